/** Writes the demo page's script to `outfile`; resolves to its size in bytes. */
export declare const bundlePage: (outfile: string) => Promise<number>

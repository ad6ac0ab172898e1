/** Writes the demo page's script to `outfile`. */
export declare const bundlePage: (outfile: string) => Promise<void>

/** The tags of an untagged metric update: one shared empty array, so an update allocates nothing. */
export const noTags: ReadonlyArray<never> = []

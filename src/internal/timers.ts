/**
 * The longest sleep Effect's clock can time: it treats anything longer as infinite
 * (setTimeout's 32-bit limit), so a larger delay would never end. Every clamp of a
 * sleep or a period uses this one value.
 */
export const maxSleepMillis = 2 ** 31 - 1

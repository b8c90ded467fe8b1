// Text a stranger (or, in the console, a reporter) wrote, as it is shown. Two
// ways to make it look like what it is not are taken out: bidirectional
// override and embedding controls, with which `abc\u202Efdp.cod.exe` shows as
// "abcexe.doc.pdf" (a line's direction still follows its own letters, and each
// line is isolated from what is around it); and runs of combining marks past
// the few any script uses, which stack into one glyph that no line can wrap.

/** LRE, RLE, PDF, LRO, RLO and LRI, RLI, FSI, PDI. */
const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069]/g;
/** Combining marks kept in a row: Vietnamese stacks two, Arabic and Indic scripts a few more. */
export const MARKS_SHOWN = 8;
const LONG_MARK_RUN = new RegExp(`(\\p{M}{${MARKS_SHOWN}})\\p{M}+`, 'gu');

export const displayText = (text: string): string => text.replace(BIDI_CONTROLS, '').replace(LONG_MARK_RUN, '$1');

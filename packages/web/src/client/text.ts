// Text a stranger (or, in the console, a reporter) wrote, as it is shown. Two
// ways to make it look like what it is not are taken out: bidirectional
// override and embedding controls, with which `abc\u202Efdp.cod.exe` shows as
// "abcexe.doc.pdf" (a line's direction still follows its own letters, and each
// line is isolated from what is around it); and runs of combining marks past
// the few any script uses, which stack into one glyph that no line can wrap.

import { markRunCutter } from '@dyad/protocol';

/** LRE, RLE, PDF, LRO, RLO and LRI, RLI, FSI, PDI. */
const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069]/g;
/** Combining marks shown in a row: Vietnamese stacks two, Arabic and Indic scripts a few more. */
const cutMarkRuns = markRunCutter(8);

export const displayText = (text: string): string => cutMarkRuns(text.replace(BIDI_CONTROLS, ''));

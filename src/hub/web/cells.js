// The cells of the web interface's terminal: attributes (colours and flags, shared immutable
// objects) and lines of characters, for the emulator (screen.js) and its view (term.js).

// Colours: -1 is the default, 0..255 the xterm palette, TRUECOLOR | 0xRRGGBB a 24-bit colour.
export const TRUECOLOR = 0x1000000;
export const BOLD = 1, DIM = 2, ITALIC = 4, UNDERLINE = 8, INVERSE = 16, HIDDEN = 32, STRIKE = 64;
// SGR codes that set (positive) or clear (negative) attribute flags. 21 is xterm's (and
// ECMA-48's) double underline, drawn as a single one.
export const SGR_FLAGS = {
  1: BOLD, 2: DIM, 3: ITALIC, 4: UNDERLINE, 7: INVERSE, 8: HIDDEN, 9: STRIKE, 21: UNDERLINE,
  22: -(BOLD | DIM), 23: -ITALIC, 24: -UNDERLINE, 27: -INVERSE, 28: -HIDDEN, 29: -STRIKE,
};

/** Cell attributes are immutable objects shared between cells; a change makes a new one. */
export const PLAIN = Object.freeze({ fg: -1, bg: -1, flags: 0 });

export const sameAttr = (a, b) => a === b || (a.fg === b.fg && a.bg === b.bg && a.flags === b.flags);

/** A cell that draws as nothing: a blank without background, inverse or lines through it. */
export const isBlank = (ch, attr) =>
  ch === " " && attr.bg === -1 && !(attr.flags & (INVERSE | UNDERLINE | STRIKE));

/** Zero-width marks that combine with the character before them. */
export const isCombining = (c) => (c >= 0x300 && c <= 0x36f) || (c >= 0x1ab0 && c <= 0x1aff)
  || (c >= 0x1dc0 && c <= 0x1dff) || (c >= 0x20d0 && c <= 0x20ff) || (c >= 0xfe00 && c <= 0xfe0f)
  || (c >= 0xfe20 && c <= 0xfe2f) || c === 0x200d;

// Wide characters, two cells each: the East Asian Wide and Fullwidth ranges (CJK, Hangul,
// kana, fullwidth forms) and the emoji that Unicode 9 made wide, as glibc's wcwidth() counts
// them, so that a program that places its cursor by wcwidth (readline, vim) lines up here.
// Sorted [first, last] pairs, found by binary search.
const WIDE = [
  [0x1100, 0x115f], [0x231a, 0x231b], [0x2329, 0x232a], [0x23e9, 0x23ec], [0x23f0, 0x23f0],
  [0x23f3, 0x23f3], [0x25fd, 0x25fe], [0x2614, 0x2615], [0x2648, 0x2653], [0x267f, 0x267f],
  [0x2693, 0x2693], [0x26a1, 0x26a1], [0x26aa, 0x26ab], [0x26bd, 0x26be], [0x26c4, 0x26c5],
  [0x26ce, 0x26ce], [0x26d4, 0x26d4], [0x26ea, 0x26ea], [0x26f2, 0x26f3], [0x26f5, 0x26f5],
  [0x26fa, 0x26fa], [0x26fd, 0x26fd], [0x2705, 0x2705], [0x270a, 0x270b], [0x2728, 0x2728],
  [0x274c, 0x274c], [0x274e, 0x274e], [0x2753, 0x2755], [0x2757, 0x2757], [0x2795, 0x2797],
  [0x27b0, 0x27b0], [0x27bf, 0x27bf], [0x2b1b, 0x2b1c], [0x2b50, 0x2b50], [0x2b55, 0x2b55],
  [0x2e80, 0x303e], [0x3041, 0x33ff], [0x3400, 0x4dbf], [0x4e00, 0x9fff], [0xa000, 0xa4cf],
  [0xa960, 0xa97f], [0xac00, 0xd7a3], [0xf900, 0xfaff], [0xfe10, 0xfe19], [0xfe30, 0xfe6f],
  [0xff00, 0xff60], [0xffe0, 0xffe6], [0x16fe0, 0x16fe4], [0x17000, 0x18cff],
  [0x1b000, 0x1b2ff], [0x1f004, 0x1f004], [0x1f0cf, 0x1f0cf], [0x1f18e, 0x1f18e],
  [0x1f191, 0x1f19a], [0x1f200, 0x1f251], [0x1f300, 0x1f320], [0x1f32d, 0x1f335],
  [0x1f337, 0x1f37c], [0x1f37e, 0x1f393], [0x1f3a0, 0x1f3ca], [0x1f3cf, 0x1f3d3],
  [0x1f3e0, 0x1f3f0], [0x1f3f4, 0x1f3f4], [0x1f3f8, 0x1f43e], [0x1f440, 0x1f440],
  [0x1f442, 0x1f4fc], [0x1f4ff, 0x1f53d], [0x1f54b, 0x1f54e], [0x1f550, 0x1f567],
  [0x1f57a, 0x1f57a], [0x1f595, 0x1f596], [0x1f5a4, 0x1f5a4], [0x1f5fb, 0x1f64f],
  [0x1f680, 0x1f6c5], [0x1f6cc, 0x1f6cc], [0x1f6d0, 0x1f6d2], [0x1f6d5, 0x1f6d7],
  [0x1f6eb, 0x1f6ec], [0x1f6f4, 0x1f6fc], [0x1f7e0, 0x1f7eb], [0x1f90c, 0x1f93a],
  [0x1f93c, 0x1f945], [0x1f947, 0x1f9ff], [0x1fa70, 0x1faff], [0x20000, 0x2fffd],
  [0x30000, 0x3fffd],
];

/** Whether code point `c` takes two cells. */
export function isWide(c) {
  if (c < 0x1100) return false;
  let lo = 0, hi = WIDE.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (c < WIDE[mid][0]) hi = mid - 1;
    else if (c > WIDE[mid][1]) lo = mid + 1;
    else return true;
  }
  return false;
}

/** Whether the cell's character (with any combining marks) is a wide one. */
const wideCell = (ch) => ch !== undefined && ch.length > 0 && isWide(ch.codePointAt(0));

// DEC special graphics (ESC ( 0), for line drawing: what ` a b ... ~ stand for.
export const DEC_GRAPHICS = "◆▒␉␌␍␊°±␤␋┘┐┌└┼⎺⎻─⎼⎽├┤┴┬│≤≥π≠£·";

/** One row: a character (a string, with any combining marks) and attributes per cell. A wide
 * character is in its first cell, and the cell after it holds "" (it draws nothing). */
export class Line {
  constructor(cols) {
    this.chars = new Array(cols).fill(" ");
    this.attrs = new Array(cols).fill(PLAIN);
  }

  /** Blanks the cells [from, to); half a wide character left at either edge is blanked. */
  erase(from, to, attr) {
    this.chars.fill(" ", from, to);
    this.attrs.fill(attr, from, to);
    this.mend(from - 1);
    this.mend(to);
  }

  /** Inserts n blanks at `at`; cells pushed past the end are lost. */
  insert(at, n, attr) {
    const len = this.chars.length;
    n = Math.min(n, len - at);
    this.chars.copyWithin(at + n, at, len - n);
    this.attrs.copyWithin(at + n, at, len - n);
    this.erase(at, at + n, attr);
    this.mend(len - 1);
  }

  /** Deletes n cells at `at`, pulling the rest left and blanking the end. */
  delete(at, n, attr) {
    const len = this.chars.length;
    n = Math.min(n, len - at);
    this.chars.copyWithin(at, at + n);
    this.attrs.copyWithin(at, at + n);
    this.erase(len - n, len, attr);
    this.mend(at - 1);
    this.mend(at);
  }

  /** Writes `ch` at `col`, wide or not: a wide character it overwrites half of goes whole. */
  put(col, ch, attr, wide) {
    this.chars[col] = ch;
    this.attrs[col] = attr;
    if (wide) {
      this.chars[col + 1] = "";
      this.attrs[col + 1] = attr;
    }
    this.mend(col - 1);
    this.mend(col + (wide ? 2 : 1));
  }

  /** Blanks the cell `i` if it is half of a wide character: a wide one whose second cell went,
   * or a second cell whose wide character went. */
  mend(i) {
    const ch = this.chars[i];
    if (ch === undefined) return;
    if (ch === "" ? !wideCell(this.chars[i - 1]) : wideCell(ch) && this.chars[i + 1] !== "") {
      this.chars[i] = " ";
    }
  }

  resize(cols) {
    const old = this.chars.length;
    this.chars.length = this.attrs.length = cols;
    if (cols > old) this.erase(old, cols, PLAIN);
    else this.mend(cols - 1); // a wide character cut in half
  }

  /** A copy without the trailing blanks, to keep in the scrollback. */
  trimmed() {
    let end = this.chars.length;
    while (end > 0 && isBlank(this.chars[end - 1], this.attrs[end - 1])) end--;
    const copy = Object.create(Line.prototype);
    copy.chars = this.chars.slice(0, end);
    copy.attrs = this.attrs.slice(0, end);
    return copy;
  }

  text() {
    return this.chars.join("").replace(/ +$/, "");
  }
}

export const blankLines = (n, cols) => Array.from({ length: n }, () => new Line(cols));

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

// DEC special graphics (ESC ( 0), for line drawing: what ` a b ... ~ stand for.
export const DEC_GRAPHICS = "◆▒␉␌␍␊°±␤␋┘┐┌└┼⎺⎻─⎼⎽├┤┴┬│≤≥π≠£·";

/** One row: a character (a string, with any combining marks) and attributes per cell. */
export class Line {
  constructor(cols) {
    this.chars = new Array(cols).fill(" ");
    this.attrs = new Array(cols).fill(PLAIN);
  }

  /** Blanks the cells [from, to). */
  erase(from, to, attr) {
    this.chars.fill(" ", from, to);
    this.attrs.fill(attr, from, to);
  }

  /** Inserts n blanks at `at`; cells pushed past the end are lost. */
  insert(at, n, attr) {
    const len = this.chars.length;
    n = Math.min(n, len - at);
    this.chars.copyWithin(at + n, at, len - n);
    this.attrs.copyWithin(at + n, at, len - n);
    this.erase(at, at + n, attr);
  }

  /** Deletes n cells at `at`, pulling the rest left and blanking the end. */
  delete(at, n, attr) {
    const len = this.chars.length;
    n = Math.min(n, len - at);
    this.chars.copyWithin(at, at + n);
    this.attrs.copyWithin(at, at + n);
    this.erase(len - n, len, attr);
  }

  resize(cols) {
    const old = this.chars.length;
    this.chars.length = this.attrs.length = cols;
    if (cols > old) this.erase(old, cols, PLAIN);
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

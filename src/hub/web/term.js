// The web interface's terminal: draws a Screen (screen.js, the emulator) into an element and
// turns keystrokes and pastes into the bytes a program expects. What the job prints is
// untrusted: it reaches the page as text nodes only.

import {
  BOLD, DIM, HIDDEN, INVERSE, ITALIC, PLAIN, STRIKE, TRUECOLOR, UNDERLINE, isBlank, sameAttr,
} from "./cells.js";
import { Screen } from "./screen.js";

/** A colour beyond the 16 that term.css names: the 6x6x6 cube, the grey ramp, or 24-bit. */
function cssColor(c) {
  if (c >= TRUECOLOR) return `rgb(${(c >> 16) & 255},${(c >> 8) & 255},${c & 255})`;
  const grey = 8 + (c - 232) * 10;
  if (c >= 232) return `rgb(${grey},${grey},${grey})`;
  const level = (x) => (x ? 55 + x * 40 : 0);
  c -= 16;
  return `rgb(${level(Math.floor(c / 36))},${level(Math.floor(c / 6) % 6)},${level(c % 6)})`;
}

/** How cells with these attributes are drawn: classes, plus the colours beyond the 16 named
 * ones, which only the CSSOM can set under the page's Content-Security-Policy. */
function styleOf(attr) {
  let { fg, bg } = attr;
  const f = attr.flags, cls = [];
  if (f & BOLD && fg >= 0 && fg < 8) fg += 8; // bold also brightens, as in xterm
  if (f & INVERSE) {
    [fg, bg] = [bg, fg];
    // A default colour swapped to the other side: the default background as a foreground
    // (xt-fg-rev), the default foreground as a background (xt-bg-rev).
    if (fg === -1) cls.push("xt-fg-rev");
    if (bg === -1) cls.push("xt-bg-rev");
  }
  if (fg >= 0 && fg < 16) cls.push(`xt-fg-${fg}`);
  if (bg >= 0 && bg < 16) cls.push(`xt-bg-${bg}`);
  if (f & BOLD) cls.push("xt-bold");
  if (f & DIM) cls.push("xt-dim");
  if (f & ITALIC) cls.push("xt-italic");
  if (f & UNDERLINE) cls.push("xt-underline");
  if (f & STRIKE) cls.push("xt-strike");
  const color = fg >= 16 ? cssColor(fg) : "", background = bg >= 16 ? cssColor(bg) : "";
  return { className: cls.join(" "), color, background };
}

const encoder = new TextEncoder();

// Special keys, as xterm sends them: ESC [ x (ESC O x in application cursor mode), ESC [ n ~,
// and ESC O x for F1-F4. With modifiers: ESC [ 1 ; m x and ESC [ n ; m ~, m = 1 + modifiers.
const CURSOR_KEYS = {
  ArrowUp: "A", ArrowDown: "B", ArrowRight: "C", ArrowLeft: "D", Home: "H", End: "F",
};
const TILDE_KEYS = {
  Insert: 2, Delete: 3, PageUp: 5, PageDown: 6,
  F5: 15, F6: 17, F7: 18, F8: 19, F9: 20, F10: 21, F11: 23, F12: 24,
};
const SS3_KEYS = { F1: "P", F2: "Q", F3: "R", F4: "S" };
/** Ctrl with a key that is not a letter: the control byte it stands for. */
const CTRL_KEYS = {
  " ": 0, "@": 0, "2": 0, "[": 27, "3": 27, "\\": 28, "4": 28, "]": 29, "5": 29,
  "^": 30, "6": 30, "_": 31, "7": 31, "/": 31, "8": 127, "?": 127,
};

/** The ASCII letter or digit of a key, also on other layouts (from the key's position). */
function baseKey(e) {
  if (e.key.length === 1 && e.key < "\x7f") return e.key;
  const m = /^(?:Key([A-Z])|Digit([0-9]))$/.exec(e.code);
  return !m ? null : m[2] || (e.shiftKey ? m[1] : m[1].toLowerCase());
}

/** What a key press sends, or null to leave it to the browser: plain characters arrive through
 * the textarea's input event instead, and browser shortcuts keep working. */
function keySequence(e, applicationCursor) {
  if (e.metaKey) return null; // Cmd shortcuts are the browser's
  const mods = (e.shiftKey ? 1 : 0) | (e.altKey ? 2 : 0) | (e.ctrlKey ? 4 : 0);
  const m = mods ? `;${mods + 1}` : "";
  if (e.key in CURSOR_KEYS) {
    return (mods ? `\x1b[1${m}` : applicationCursor ? "\x1bO" : "\x1b[") + CURSOR_KEYS[e.key];
  }
  if (e.key in TILDE_KEYS) return `\x1b[${TILDE_KEYS[e.key]}${m}~`;
  if (e.key in SS3_KEYS) return (mods ? `\x1b[1${m}` : "\x1bO") + SS3_KEYS[e.key];
  switch (e.key) {
    case "Enter": return e.altKey ? "\x1b\r" : "\r";
    case "Backspace": return e.ctrlKey ? "\x08" : e.altKey ? "\x1b\x7f" : "\x7f";
    case "Tab": return e.shiftKey ? "\x1b[Z" : "\t";
    case "Escape": return "\x1b";
  }
  // AltGr (Ctrl+Alt on Windows) types characters: those come through the input event.
  if (e.getModifierState && e.getModifierState("AltGraph")) return null;
  const esc = e.altKey ? "\x1b" : ""; // Alt (Meta) sends ESC before the key
  const k = baseKey(e);
  if (e.ctrlKey && k && /^[a-z]$/i.test(k)) {
    // Ctrl+Shift+letter stays with the browser (Ctrl+Shift+V pastes, for one).
    return e.shiftKey ? null : esc + String.fromCharCode(k.toUpperCase().charCodeAt(0) - 64);
  }
  if (e.ctrlKey) return e.key in CTRL_KEYS ? esc + String.fromCharCode(CTRL_KEYS[e.key]) : null;
  return e.altKey && k ? esc + k : null;
}

function element(tag, className) {
  const el = document.createElement(tag);
  el.className = className;
  return el;
}

/** The view: renders a Screen into an element, takes keyboard/paste input. The page sizes the
 * element; fit() picks the rows and columns that fill it. */
export class Terminal {
  constructor(elem, { rows = 24, cols = 80, scrollback = 5000 } = {}) {
    this.element = elem;
    this.screen = new Screen(rows, cols, scrollback);
    this.screen.onReply = (s) => this._send(s);
    /** Set by the app: called with a Uint8Array of bytes for the job. */
    this.onData = null;

    // The viewport scrolls over the scrollback's rows, then the screen's. The textarea is the
    // invisible input sink that holds the focus (so IME, paste and mobile keyboards work).
    this._viewport = element("div", "xt-viewport");
    this._scrollbackEl = element("div", "xt-scrollback");
    this._screenEl = element("div", "xt-screen");
    this._measure = element("div", "xt-row xt-measure");
    this._measure.append(element("span", ""));
    this._measure.firstChild.textContent = "W".repeat(50);
    this._input = element("textarea", "xt-input");
    this._input.setAttribute("aria-label", "terminal input");
    for (const k of ["autocomplete", "autocapitalize", "autocorrect"]) {
      this._input.setAttribute(k, "off");
    }
    this._input.spellcheck = false;
    this._viewport.append(this._scrollbackEl, this._screenEl, this._measure);
    elem.classList.add("xt-term");
    elem.append(this._viewport, this._input);

    this._rowEls = []; // the screen rows' divs
    this._styles = new WeakMap(); // attributes -> styleOf(attributes)
    // The scrollback lines on the page: numbers [_sbFirst, _sbEnd), counted as scrolledOut is.
    this._sbFirst = this._sbEnd = this.screen.scrolledOut;
    this._cursorRow = -1; // where the cursor was last drawn
    this._follow = true; // keep showing the bottom as output arrives
    this._wheel = 0; // wheel movement not yet sent as arrow keys, in rows
    this._frame = 0;

    this._listeners = [];
    const on = (target, type, fn, opts) => {
      target.addEventListener(type, fn, opts);
      this._listeners.push([target, type, fn, opts]);
    };
    on(this._input, "keydown", (e) => this._onKeyDown(e));
    on(this._input, "input", (e) => !e.isComposing && this._flushInput());
    on(this._input, "compositionend", () => this._flushInput());
    on(this._input, "paste", (e) => this._onPaste(e));
    on(this._input, "focus", () => elem.classList.add("xt-focused"));
    on(this._input, "blur", () => elem.classList.remove("xt-focused"));
    // A click focuses; the end of a drag that selected text (to copy) does not.
    on(elem, "mouseup", () => window.getSelection().isCollapsed && this.focus());
    on(this._viewport, "scroll", () => {
      const v = this._viewport;
      this._follow = v.scrollHeight - v.clientHeight - v.scrollTop < 2;
    });
    on(this._viewport, "wheel", (e) => this._onWheel(e), { passive: false });

    this._syncRows();
    this._schedule();
  }

  write(data) {
    this.screen.write(data);
    this._schedule();
  }

  /** The rows' divs follow at the next frame, with what the Screen moved: the page never shows
   * (nor gives to innerText, a screen reader or a copy) a screen cut short while the lines a
   * shrink pushed into the scrollback are not drawn there yet. */
  resize(rows, cols) {
    this.screen.resize(rows, cols);
    this._schedule();
  }

  /** Resizes to the rows and columns that fit the element, from a measured character cell. */
  fit() {
    const cellWidth = this._measure.firstChild.getBoundingClientRect().width / 50;
    const cellHeight = this._measure.getBoundingClientRect().height;
    const { paddingLeft, paddingRight } = getComputedStyle(this._screenEl);
    const width = this._viewport.clientWidth - parseFloat(paddingLeft) - parseFloat(paddingRight);
    // The vertical scrollbar is always there; a horizontal one only while the content is wider
    // than the view, which the new size ends: so the height is taken without it.
    const height = this._viewport.offsetHeight;
    if (cellWidth > 0 && cellHeight > 0 && width > 0 && height > 0) {
      this.resize(Math.floor(height / cellHeight), Math.max(2, Math.floor(width / cellWidth)));
    }
    return { rows: this.screen.rows, cols: this.screen.cols };
  }

  focus() {
    this._input.focus({ preventScroll: true });
  }

  dispose() {
    cancelAnimationFrame(this._frame);
    for (const [target, type, fn, opts] of this._listeners) {
      target.removeEventListener(type, fn, opts);
    }
    this._listeners = [];
    this._viewport.remove();
    this._input.remove();
    this.element.classList.remove("xt-term", "xt-focused", "xt-alt");
    this.screen.onReply = this.onData = null;
  }

  // ---- input ----

  _send(s) {
    if (this.onData) this.onData(encoder.encode(s));
  }

  /** Sends what the user typed, and brings the bottom of the terminal back into view. */
  _type(s) {
    this._follow = true;
    this._schedule();
    this._send(s);
  }

  _onKeyDown(e) {
    if (e.isComposing || e.keyCode === 229) return; // an input method is composing
    if (e.shiftKey && !e.ctrlKey && !e.altKey && (e.key === "PageUp" || e.key === "PageDown")) {
      // Shift+PageUp/PageDown scroll the view, as in most terminals.
      this._viewport.scrollTop += (e.key === "PageUp" ? -0.9 : 0.9) * this._viewport.clientHeight;
      e.preventDefault();
      return;
    }
    const seq = keySequence(e, this.screen.applicationCursor);
    if (seq === null) return;
    e.preventDefault();
    this._type(seq);
  }

  /** Characters typed (or composed by an IME) land in the textarea: send them, empty it. */
  _flushInput() {
    const text = this._input.value;
    this._input.value = "";
    if (text) this._type(text.replace(/\r?\n/g, "\r"));
  }

  _onPaste(e) {
    e.preventDefault();
    let text = e.clipboardData.getData("text/plain").replace(/\r\n?|\n/g, "\r");
    if (!text) return;
    if (this.screen.bracketedPaste) {
      // Markers inside are dropped, so that a paste cannot end the bracket early and have the
      // rest run as typed commands.
      text = `\x1b[200~${text.replace(/\x1b\[20[01]~/g, "")}\x1b[201~`;
    }
    this._type(text);
  }

  /** On the alternate screen (less, vi...), which has no scrollback, the wheel sends arrow keys
   * instead, as xterm's "alternate scroll" does. */
  _onWheel(e) {
    if (!this.screen.altScreen || e.deltaY === 0) return;
    e.preventDefault();
    // deltaY is in pixels, rows or pages, as deltaMode says.
    const rowHeight = this._measure.getBoundingClientRect().height || 16;
    this._wheel += e.deltaY / [rowHeight, 1, 1 / this.screen.rows][e.deltaMode];
    const lines = Math.trunc(this._wheel);
    this._wheel -= lines;
    const key = (this.screen.applicationCursor ? "\x1bO" : "\x1b[") + (lines < 0 ? "A" : "B");
    if (lines) this._type(key.repeat(Math.abs(lines)));
  }

  // ---- rendering: at most once per animation frame, and only what changed ----

  _schedule() {
    if (!this._frame) this._frame = requestAnimationFrame(() => this._render());
  }

  /** One div per screen row. */
  _syncRows() {
    while (this._rowEls.length < this.screen.rows) {
      this._rowEls.push(this._screenEl.appendChild(element("div", "xt-row")));
    }
    while (this._rowEls.length > this.screen.rows) this._rowEls.pop().remove();
  }

  _render() {
    this._frame = 0;
    const s = this.screen;
    this._syncRows();
    this.element.classList.toggle("xt-alt", s.altScreen);
    this._renderScrollback();
    const dirty = s.takeDirty();
    // The rows the cursor left and entered need drawing too.
    const cursor = s.cursorVisible ? s.cursor : null;
    if (this._cursorRow >= 0 && this._cursorRow < s.rows) dirty.add(this._cursorRow);
    if (cursor) dirty.add(cursor.row);
    for (const r of dirty) {
      this._renderLine(this._rowEls[r], s.getLine(r), cursor && cursor.row === r ? cursor.col : -1);
    }
    this._cursorRow = cursor ? cursor.row : -1;
    if (this._follow) this._viewport.scrollTop = this._viewport.scrollHeight;
  }

  /** Scrollback lines never change: drop the rows of those the Screen dropped, add new ones. */
  _renderScrollback() {
    const s = this.screen, sb = this._scrollbackEl;
    const first = s.scrolledOut - s.scrollback.length;
    const drop = Math.min(first, this._sbEnd) - this._sbFirst;
    if (drop >= sb.childElementCount) sb.replaceChildren();
    else for (let k = 0; k < drop; k++) sb.firstChild.remove();
    this._sbFirst = first;
    const frag = document.createDocumentFragment();
    for (let n = Math.max(this._sbEnd, first); n < s.scrolledOut; n++) {
      this._renderLine(frag.appendChild(element("div", "xt-row")), s.scrollback[n - first], -1);
    }
    sb.append(frag);
    this._sbEnd = s.scrolledOut;
  }

  /** Fills a row's div: each run of equal attributes is one span (plain text: a bare text
   * node), trailing blanks are left out, and the cursor's cell is a span of its own, as is a
   * wide character (two cells wide whatever the font makes of it). */
  _renderLine(row, { chars, attrs }, cursorCol) {
    let end = chars.length;
    while (end > 0 && isBlank(chars[end - 1], attrs[end - 1])) end--;
    if (cursorCol >= end) end = cursorCol + 1;
    const nodes = [];
    for (let i = 0, j; i < end; i = j) {
      const attr = attrs[i];
      const wide = chars[i + 1] === "";
      j = wide ? i + 2 : i + 1;
      if (!wide && i !== cursorCol) {
        while (j < end && j !== cursorCol && chars[j + 1] !== "" && sameAttr(attrs[j], attr)) j++;
      }
      const text = attr.flags & HIDDEN ? " ".repeat(j - i) : chars.slice(i, j).join("");
      // The cursor on either cell of a wide character is on the character.
      const isCursor = i === cursorCol || (wide && i + 1 === cursorCol);
      nodes.push(this._run(text, attr, isCursor, wide));
    }
    row.replaceChildren(...nodes);
  }

  _run(text, attr, isCursor, wide) {
    if (attr === PLAIN && !isCursor && !wide) return document.createTextNode(text);
    let style = this._styles.get(attr);
    if (!style) this._styles.set(attr, (style = styleOf(attr)));
    const span = element("span", style.className);
    if (isCursor) span.classList.add("xt-cursor");
    if (wide) span.classList.add("xt-wide");
    span.textContent = text;
    if (style.color) span.style.color = style.color;
    if (style.background) span.style.backgroundColor = style.background;
    return span;
  }
}

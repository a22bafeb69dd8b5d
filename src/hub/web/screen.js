// The emulator of the web interface's terminal: the subset of VT100/xterm that bash,
// python -i, less, top and vi need, as a parser, a character grid and scrollback. No DOM, so
// node (or a page) can test it; term.js draws it and takes keys.
//
// Deliberate simplifications: every character takes one cell (CJK and emoji are drawn in one
// cell's slot, so the rest of their row shifts right on screen); combining marks join the
// previous cell; tab stops are fixed every 8 columns; no mouse reporting; lines are not
// re-wrapped on resize. What the job prints is untrusted: it reaches the page as text nodes only.

import {
  DEC_GRAPHICS, Line, PLAIN, SGR_FLAGS, TRUECOLOR, UNDERLINE, blankLines, isCombining, isWide,
} from "./cells.js";

// Parser states, after Paul Williams' DEC parser, simplified.
const GROUND = 0, ESCAPE = 1, CSI = 2, STRING = 3, STRING_ESC = 4;

/** The emulator: parser + screen grid + scrollback. No DOM. */
export class Screen {
  constructor(rows = 24, cols = 80, scrollback = 5000) {
    this.rows = rows;
    this.cols = cols;
    this.scrollbackLimit = scrollback;
    /** Lines that scrolled off the top of the main screen, oldest first. */
    this.scrollback = [];
    /** How many lines have ever entered the scrollback: scrollback[i] is line number
     * scrolledOut - scrollback.length + i, so a view can tell what is new and what was dropped. */
    this.scrolledOut = 0;
    /** Set by OSC 0 and OSC 2. */
    this.title = "";
    /** Called with a string to send back to the program: answers to DSR and DA. */
    this.onReply = null;
    this._decoder = new TextDecoder();
    this._dirty = new Uint8Array(rows); // per row: changed since takeDirty()
    this._allDirty = false; // all rows changed (a scroll, a clear): cheaper than the flags
    this._reset();
  }

  /** RIS (ESC c), a full reset; the scrollback is kept, as in xterm. */
  _reset() {
    this._main = { lines: blankLines(this.rows, this.cols), saved: null };
    this._alt = { lines: blankLines(this.rows, this.cols), saved: null };
    this._buf = this._main;
    this._row = this._col = 0;
    // The "pending wrap" rule: a character written in the last column leaves the cursor there,
    // and only the next printable character wraps. So a line of exactly `cols` characters
    // followed by CR LF leaves no empty line behind.
    this._wrapPending = false;
    this._lastChar = null; // for REP
    this._lastWide = false;
    this._state = GROUND;
    this._osc = null; // the text of the OSC string being read
    this.bracketedPaste = false;
    this._softReset();
  }

  /** DECSTR (CSI ! p): modes, attributes, margins and charsets back to their defaults. */
  _softReset() {
    this._setAttr(PLAIN);
    this._top = 0;
    this._bottom = this.rows - 1;
    this._autowrap = true;
    this._insert = false;
    this._origin = false;
    this._charsets = ["B", "B"]; // G0 and G1: "0" is line drawing, anything else ASCII
    this._shift = 0; // which one is in use (SI / SO)
    this._main.saved = this._alt.saved = null;
    /** DECCKM: the arrow keys send ESC O x instead of ESC [ x. */
    this.applicationCursor = false;
    this.cursorVisible = true;
    this._markAll();
  }

  get cursor() {
    return { row: this._row, col: this._col };
  }

  get altScreen() {
    return this._buf === this._alt;
  }

  /** The cells of screen row r: { chars: string[], attrs: {fg, bg, flags}[] }. */
  getLine(r) {
    return this._buf.lines[r];
  }

  /** The screen rows changed since the last call, as a Set; clears the record. */
  takeDirty() {
    const rows = new Set();
    for (let r = 0; r < this.rows; r++) if (this._allDirty || this._dirty[r]) rows.add(r);
    this._dirty.fill(0);
    this._allDirty = false;
    return rows;
  }

  /** The visible screen: rows right-trimmed, trailing empty rows dropped. */
  text() {
    return this._buf.lines.map((l) => l.text()).join("\n").replace(/\n+$/, "");
  }

  /** Scrollback then screen, one right-trimmed string per line. */
  lines() {
    return this.scrollback.concat(this._buf.lines).map((l) => l.text());
  }

  write(data) {
    if (typeof data !== "string") {
      if (data instanceof ArrayBuffer) data = new Uint8Array(data);
      // stream: a UTF-8 sequence split between two writes is completed by the next one.
      data = this._decoder.decode(data, { stream: true });
    }
    this._parse(data);
    this._trimScrollback();
  }

  _parse(s) {
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      // OSC, DCS, SOS, PM and APC strings run to BEL or ST (ESC \).
      if (this._state >= STRING) {
        if (this._state === STRING_ESC) {
          this._endString();
          if (c === 0x5c) continue; // ESC \ is ST
          this._state = ESCAPE; // any other ESC x starts a new sequence: x is handled below
          this._inter = "";
        } else {
          if (c === 0x07 || c === 0x9c) this._endString();
          else if (c === 0x1b) this._state = STRING_ESC;
          else if (c === 0x18 || c === 0x1a) this._state = GROUND;
          else if (this._osc !== null && this._osc.length < 4096) this._osc += s[i];
          continue;
        }
      }
      // C0 controls act even in the middle of a sequence; ESC starts a new one, CAN and SUB
      // cancel it.
      if (c < 0x20 || c === 0x7f) {
        if (c === 0x1b) {
          this._state = ESCAPE;
          this._inter = "";
        } else if (c === 0x18 || c === 0x1a) {
          this._state = GROUND;
        } else {
          this._control(c);
        }
        continue;
      }
      if (this._state === GROUND) {
        if (c >= 0x80 && c < 0xa0) continue; // C1 controls: ignored
        let j = i + 1; // print the whole run of printable characters
        for (let d; j < s.length && (d = s.charCodeAt(j)) >= 0x20 && (d < 0x7f || d >= 0xa0);) j++;
        this._print(s, i, j);
        i = j - 1;
      } else if (this._state === CSI) {
        this._csiByte(c, s[i]);
      } else if (c >= 0x20 && c <= 0x2f) { // (state ESCAPE) an intermediate, as in ESC ( B
        this._inter += s[i];
      } else if (this._inter === "" && c === 0x5b) { // ESC [
        this._state = CSI;
        this._params = [[-1]];
        this._prefix = "";
        this._bad = false;
      } else if (this._inter === "" && (c === 0x5d || "PX^_".includes(s[i]))) { // OSC, DCS...
        this._state = STRING;
        this._osc = c === 0x5d ? "" : null; // only OSC's text matters
      } else {
        this._state = GROUND;
        this._escDispatch(s[i]);
      }
    }
  }

  /** One byte of a control sequence: CSI [private marker] parameters [intermediates] final. */
  _csiByte(c, ch) {
    const params = this._params;
    if (c >= 0x30 && c <= 0x39) {
      // Parameters are groups split by ';', each with sub-parameters split by ':' (38:2::r:g:b);
      // -1 stands for "omitted".
      const g = params[params.length - 1];
      const v = g[g.length - 1];
      g[g.length - 1] = Math.min((v < 0 ? 0 : v) * 10 + c - 0x30, 0xffff);
    } else if (c === 0x3b || c === 0x3a) {
      const g = params[params.length - 1];
      if (params.length >= 32 || g.length >= 32) this._bad = true; // no endless lists
      else if (c === 0x3b) params.push([-1]);
      else g.push(-1);
    } else if (c >= 0x3c && c <= 0x3f) {
      // A private marker (? > < =) is valid only before the parameters.
      if (this._prefix || params.length > 1 || params[0][0] >= 0 || this._inter) this._bad = true;
      else this._prefix = ch;
    } else if (c >= 0x20 && c <= 0x2f) {
      this._inter += ch;
    } else {
      this._state = GROUND;
      if (c >= 0x40 && c <= 0x7e && !this._bad) this._csiDispatch(ch);
    }
  }

  /** Parameter i, or `def` when omitted. */
  _p(i, def) {
    const v = i < this._params.length ? this._params[i][0] : -1;
    return v < 0 ? def : v;
  }

  /** Parameter i as a count: omitted or 0 means 1. */
  _n(i) {
    return Math.max(1, this._p(i, 1));
  }

  /** The end of an OSC, DCS... string: only OSC 0 and 2 (the title) mean anything here. */
  _endString() {
    const m = this._osc !== null && /^[02];(.*)$/s.exec(this._osc);
    if (m) this.title = m[1];
    this._osc = null;
    this._state = GROUND;
  }

  _reply(s) {
    if (this.onReply) this.onReply(s);
  }

  _markAll() {
    this._allDirty = true;
  }

  _markRows(from, to) {
    if (from === 0 && to === this.rows - 1) this._allDirty = true;
    else this._dirty.fill(1, from, to + 1);
  }

  _setAttr(attr) {
    this._attr = attr;
    // Erasing fills with the current background colour only (xterm's "bce").
    this._fill = attr.bg === -1 ? PLAIN : { fg: -1, bg: attr.bg, flags: 0 };
  }

  // ---- printing ----

  _print(s, from, to) {
    const graphics = this._charsets[this._shift] === "0";
    for (let i = from; i < to; i++) {
      const c = s.charCodeAt(i);
      let ch = s[i];
      let cp = c;
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < to) {
        cp = s.codePointAt(i);
        ch = s.slice(i, ++i + 1); // surrogate pair
      }
      if (isCombining(c)) {
        // Onto the cell just written: under the cursor if a wrap is pending, else left of it
        // (the first of a wide character's two).
        const chars = this._buf.lines[this._row].chars;
        let col = this._wrapPending ? this._col : this._col - 1;
        if (col > 0 && chars[col] === "") col--;
        if (col >= 0) chars[col] += ch;
        this._dirty[this._row] = 1;
        continue;
      }
      if (graphics && c >= 0x60 && c <= 0x7e) this._put(DEC_GRAPHICS[c - 0x60], false);
      else this._put(ch, isWide(cp));
    }
  }

  /** Writes a character at the cursor; a `wide` one takes two cells. */
  _put(ch, wide) {
    if (this._wrapPending && this._autowrap) {
      this._col = 0;
      this._index();
    }
    this._wrapPending = false;
    if (wide && this._col === this.cols - 1) {
      // A wide character that does not fit in the last column goes, whole, to the next line,
      // as in xterm; without autowrap it overwrites the last two columns.
      if (this.cols < 2) wide = false;
      else if (this._autowrap) {
        this._col = 0;
        this._index();
      } else this._col--;
    }
    const width = wide ? 2 : 1;
    const line = this._buf.lines[this._row];
    if (this._insert) line.insert(this._col, width, this._fill);
    line.put(this._col, ch, this._attr, wide);
    this._dirty[this._row] = 1;
    this._lastChar = ch;
    this._lastWide = wide;
    const last = this._col + width - 1;
    if (last < this.cols - 1) this._col = last + 1;
    else {
      this._col = last;
      if (this._autowrap) this._wrapPending = true; // (else the last column is overwritten)
    }
  }

  // ---- controls and escape sequences ----

  _control(c) {
    switch (c) {
      case 0x08: this._moveTo(this._row, this._col - 1); break; // BS
      case 0x09: this._moveTo(this._row, this._tab(1)); break; // HT
      case 0x0a: case 0x0b: case 0x0c: this._index(); this._wrapPending = false; break; // LF VT FF
      case 0x0d: this._moveTo(this._row, 0); break; // CR
      case 0x0e: this._shift = 1; break; // SO: G1
      case 0x0f: this._shift = 0; break; // SI: G0
      // BEL, NUL and the rest: ignored.
    }
  }

  /** The column n tab stops right (n < 0: left) of the cursor. */
  _tab(n) {
    const stop = n > 0 ? Math.floor(this._col / 8) + n : Math.ceil(this._col / 8) + n;
    return Math.max(0, Math.min(this.cols - 1, stop * 8));
  }

  _escDispatch(ch) {
    if (this._inter === "(") this._charsets[0] = ch;
    if (this._inter === ")") this._charsets[1] = ch;
    if (this._inter !== "") return; // ESC * x, ESC + x (G2, G3), ESC % G, ESC # 8...: ignored
    switch (ch) {
      case "7": this._saveCursor(); break; // DECSC
      case "8": this._restoreCursor(); break; // DECRC
      case "D": this._index(); this._wrapPending = false; break; // IND
      case "E": this._index(); this._moveTo(this._row, 0); break; // NEL
      case "M": this._reverseIndex(); this._wrapPending = false; break; // RI
      case "c": this._reset(); break; // RIS
      // ESC = and ESC > switch the keypad between application and numeric mode; its keys
      // reach the Terminal as plain characters, so both are ignored, as are ESC H (set a tab
      // stop), single shifts (ESC N, ESC O) and a stray ST (ESC \).
    }
  }

  _csiDispatch(f) {
    const prefix = this._prefix, inter = this._inter;
    if (prefix === "?" && inter === "") {
      if (f === "h" || f === "l") this._setPrivateModes(f === "h");
      else if (f === "n" && this._p(0, 0) === 6) this._reply(`\x1b[?${this._cursorReport()}R`);
      return;
    }
    if (prefix !== "") return; // CSI > c, CSI > 4;2 m (modifyOtherKeys)...: not ours
    if (inter === "!" && f === "p") this._softReset();
    if (inter !== "") return; // CSI SP q (cursor shape), CSI $ p (mode queries)...
    const n = this._n(0), row = this._row, col = this._col;
    // CUU and CUD stop at the scroll margins if the cursor starts inside them.
    const up = Math.max(row >= this._top ? this._top : 0, row - n);
    const down = Math.min(row <= this._bottom ? this._bottom : this.rows - 1, row + n);
    switch (f) {
      case "A": this._moveTo(up, col); break; // CUU
      case "B": case "e": this._moveTo(down, col); break; // CUD, VPR
      case "C": case "a": this._moveTo(row, col + n); break; // CUF, HPR
      case "D": this._moveTo(row, col - n); break; // CUB
      case "E": this._moveTo(down, 0); break; // CNL
      case "F": this._moveTo(up, 0); break; // CPL
      case "G": case "`": this._moveTo(row, n - 1); break; // CHA, HPA
      case "H": case "f": this._moveToOrigin(n - 1, this._n(1) - 1); break; // CUP
      case "d": this._moveToOrigin(n - 1, col); break; // VPA
      case "I": this._moveTo(row, this._tab(n)); break; // CHT
      case "Z": this._moveTo(row, this._tab(-n)); break; // CBT
      case "J": this._eraseDisplay(this._p(0, 0)); break; // ED
      case "K": this._eraseLine(this._p(0, 0)); break; // EL
      case "L": case "M": // IL, DL: only inside the scroll region, from the cursor's row down
        if (row < this._top || row > this._bottom) break;
        if (f === "L") this._scrollDown(n, row, this._bottom);
        else this._scrollUp(n, row, this._bottom);
        this._wrapPending = false;
        break;
      case "@": this._editLine((l) => l.insert(col, n, this._fill)); break; // ICH
      case "P": this._editLine((l) => l.delete(col, n, this._fill)); break; // DCH
      case "X": this._editLine((l) => l.erase(col, col + n, this._fill)); break; // ECH
      case "S": this._scrollUp(n, this._top, this._bottom); break; // SU
      case "T": this._scrollDown(n, this._top, this._bottom); break; // SD
      case "b": // REP: the last printed character, n more times
        if (this._lastChar === null) break;
        for (let k = Math.min(n, this.rows * this.cols); k > 0; k--) {
          this._put(this._lastChar, this._lastWide);
        }
        break;
      case "r": { // DECSTBM
        const top = n - 1, bottom = Math.min(this._p(1, 0) || this.rows, this.rows) - 1;
        if (top >= bottom) break;
        this._top = top;
        this._bottom = bottom;
        this._moveToOrigin(0, 0);
        break;
      }
      case "s": this._saveCursor(); break; // SCOSC
      case "u": this._restoreCursor(); break; // SCORC
      case "m": this._sgr(); break;
      case "h": case "l": // SM, RM: only IRM (4), insert mode
        for (const [p] of this._params) if (p === 4) this._insert = f === "h";
        break;
      case "n": // DSR: status, cursor position
        if (this._p(0, 0) === 5) this._reply("\x1b[0n");
        else if (this._p(0, 0) === 6) this._reply(`\x1b[${this._cursorReport()}R`);
        break;
      case "c": // DA: "a VT100 with advanced video"
        if (this._p(0, 0) === 0) this._reply("\x1b[?1;2c");
        break;
      // Anything else (window ops CSI t, tab stops CSI g...) is swallowed.
    }
  }

  _cursorReport() {
    return `${this._row - (this._origin ? this._top : 0) + 1};${this._col + 1}`;
  }

  _setPrivateModes(on) {
    for (const [p] of this._params) {
      switch (p) {
        case 1: this.applicationCursor = on; break; // DECCKM
        case 6: this._origin = on; this._moveToOrigin(0, 0); break; // DECOM
        case 7: this._autowrap = on; break; // DECAWM
        case 25: this.cursorVisible = on; break; // DECTCEM
        case 47: this._useAlt(on, false); break;
        case 1047: this._useAlt(on, true); break;
        case 1048: if (on) this._saveCursor(); else this._restoreCursor(); break;
        case 1049: // save the cursor and switch to a cleared alternate screen; and back
          if (on && !this.altScreen) {
            this._saveCursor();
            this._useAlt(true, true);
          } else if (!on && this.altScreen) {
            this._useAlt(false);
            this._restoreCursor();
          }
          break;
        case 2004: this.bracketedPaste = on; break;
        // Mouse tracking (1000-1006), focus events (1004), cursor blink (12)...: ignored.
      }
    }
  }

  _useAlt(on, clear) {
    if (on === this.altScreen) return;
    if (on && clear) this._alt.lines = blankLines(this.rows, this.cols);
    this._buf = on ? this._alt : this._main;
    this._markAll();
  }

  /** SGR: a list of attribute changes. */
  _sgr() {
    let { fg, bg, flags } = this._attr;
    const ps = this._params;
    for (let i = 0; i < ps.length; i++) {
      const g = ps[i], p = Math.max(0, g[0]);
      if (p === 38 || p === 48 || p === 58) {
        // An extended colour: 38;5;n or 38;2;r;g;b, or with colons 38:5:n or 38:2:[id]:r:g:b.
        let v;
        if (g.length > 1) {
          v = g.slice(1);
          if (v[0] === 2 && v.length > 4) v.splice(1, 1); // drop the colour space id
        } else {
          const kind = ps[i + 1] ? ps[i + 1][0] : -1;
          v = ps.slice(i + 1, i + (kind === 2 ? 5 : kind === 5 ? 3 : 2)).map((q) => q[0]);
          i += v.length;
        }
        v = v.map((x) => Math.max(0, x) & 255);
        const color = v[0] === 5 && v.length > 1 ? v[1]
          : v[0] === 2 && v.length > 3 ? TRUECOLOR | (v[1] << 16) | (v[2] << 8) | v[3] : null;
        // (58, the underline colour, is parsed only so that its arguments are not taken as codes.)
        if (color !== null && p === 38) fg = color;
        else if (color !== null && p === 48) bg = color;
      } else if (p === 0) {
        fg = bg = -1;
        flags = 0;
      } else if (p === 4 && g[1] === 0) { // 4:0, "not underlined"
        flags &= ~UNDERLINE;
      } else if (SGR_FLAGS[p] > 0) {
        flags |= SGR_FLAGS[p];
      } else if (SGR_FLAGS[p] < 0) {
        flags &= ~-SGR_FLAGS[p];
      } else if (p >= 30 && p <= 37) fg = p - 30;
      else if (p >= 90 && p <= 97) fg = p - 90 + 8;
      else if (p === 39) fg = -1;
      else if (p >= 40 && p <= 47) bg = p - 40;
      else if (p >= 100 && p <= 107) bg = p - 100 + 8;
      else if (p === 49) bg = -1;
      // Blink (5, 6, 25) and the rest: ignored.
    }
    this._setAttr(fg === -1 && bg === -1 && flags === 0 ? PLAIN : { fg, bg, flags });
  }

  // ---- the cursor ----

  /** Moves to (row, col), clamped to the screen; any move cancels a pending wrap. */
  _moveTo(row, col) {
    this._row = Math.max(0, Math.min(this.rows - 1, row));
    this._col = Math.max(0, Math.min(this.cols - 1, col));
    this._wrapPending = false;
  }

  /** An absolute move (CUP, VPA): in origin mode (DECOM) rows count from the top margin and
   * stay inside the scroll region. */
  _moveToOrigin(row, col) {
    if (this._origin) this._moveTo(Math.min(this._top + row, this._bottom), col);
    else this._moveTo(row, col);
  }

  _saveCursor() {
    this._buf.saved = {
      row: this._row, col: this._col, wrapPending: this._wrapPending, attr: this._attr,
      origin: this._origin, charsets: this._charsets.slice(), shift: this._shift,
    };
  }

  /** Restores what _saveCursor saved on this screen; with nothing saved, goes home. */
  _restoreCursor() {
    const s = this._buf.saved || { row: 0, col: 0, attr: PLAIN, charsets: ["B", "B"], shift: 0 };
    this._moveTo(s.row, s.col);
    this._wrapPending = !!s.wrapPending && this._col === this.cols - 1;
    this._setAttr(s.attr);
    this._origin = !!s.origin;
    this._charsets = s.charsets.slice();
    this._shift = s.shift;
  }

  /** IND: down a row, scrolling the region up at its bottom margin. */
  _index() {
    if (this._row === this._bottom) this._scrollUp(1, this._top, this._bottom);
    else if (this._row < this.rows - 1) this._row++;
  }

  /** RI: up a row, scrolling the region down at its top margin. */
  _reverseIndex() {
    if (this._row === this._top) this._scrollDown(1, this._top, this._bottom);
    else if (this._row > 0) this._row--;
  }

  // ---- scrolling and erasing ----

  /** Rows [top, bottom] move up n, blank rows come in at the bottom. As in xterm, rows leaving
   * the top of the main screen (when the region starts at row 0) go to the scrollback. */
  _scrollUp(n, top, bottom) {
    n = Math.min(n, bottom - top + 1);
    const lines = this._buf.lines;
    const gone = lines.slice(top, top + n);
    for (let r = top; r <= bottom - n; r++) lines[r] = lines[r + n];
    for (let k = 0; k < n; k++) {
      if (top === 0 && this._buf === this._main) this._pushScrollback(gone[k].trimmed());
      // The Line objects are reused as the new blank rows: floods of output allocate little.
      gone[k].erase(0, this.cols, this._fill);
      lines[bottom - n + 1 + k] = gone[k];
    }
    this._markRows(top, bottom);
  }

  _scrollDown(n, top, bottom) {
    n = Math.min(n, bottom - top + 1);
    const lines = this._buf.lines;
    const gone = lines.slice(bottom - n + 1, bottom + 1);
    for (let r = bottom; r >= top + n; r--) lines[r] = lines[r - n];
    for (let k = 0; k < n; k++) {
      gone[k].erase(0, this.cols, this._fill);
      lines[top + k] = gone[k];
    }
    this._markRows(top, bottom);
  }

  _pushScrollback(line) {
    if (this.scrollbackLimit <= 0) return;
    this.scrollback.push(line);
    this.scrolledOut++;
    // Trimmed exactly at the end of each write, and here only now and then, so that a flood
    // of output does not pay for moving the whole array on every line.
    if (this.scrollback.length > 2 * this.scrollbackLimit + 1024) this._trimScrollback();
  }

  _trimScrollback() {
    const excess = this.scrollback.length - this.scrollbackLimit;
    if (excess > 0) this.scrollback.splice(0, excess);
  }

  _editLine(edit) {
    edit(this._buf.lines[this._row]);
    this._wrapPending = false;
    this._dirty[this._row] = 1;
  }

  _eraseLine(mode) {
    const from = mode === 0 ? this._col : 0, to = mode === 1 ? this._col + 1 : this.cols;
    if (mode <= 2) this._editLine((l) => l.erase(from, to, this._fill));
  }

  _eraseDisplay(mode) {
    if (mode === 3) { // the scrollback: the view sees scrollback[0] is now line scrolledOut
      this.scrollback = [];
      return;
    }
    if (mode > 3) return;
    // Whole rows: below the cursor's (0), above it (1), all (2).
    const from = mode === 0 ? this._row + 1 : 0, to = mode === 1 ? this._row : this.rows;
    for (let r = from; r < to; r++) this._buf.lines[r].erase(0, this.cols, this._fill);
    this._markRows(from, to - 1);
    this._eraseLine(mode); // the cursor's row: from the cursor, to it, or whole
  }

  // ---- resizing ----

  /** Keeps the content anchored top-left. Rows leave the top of the main screen for the
   * scrollback only as far as needed to keep the cursor's row visible; the rest are cut from
   * the bottom. Lines are cut or padded on the right, not re-wrapped. */
  resize(rows, cols) {
    rows = Math.max(1, rows | 0);
    cols = Math.max(1, cols | 0);
    if (rows === this.rows && cols === this.cols) return;
    if (cols > this.cols && this._wrapPending) {
      this._col++; // the character that was about to wrap now fits on this line
      this._wrapPending = false;
    }
    for (const buf of [this._main, this._alt]) {
      const active = buf === this._buf;
      const keep = active ? this._row : buf.saved ? buf.saved.row : 0;
      const gone = buf.lines.splice(0, Math.max(0, keep - (rows - 1)));
      if (buf === this._main) for (const l of gone) this._pushScrollback(l.trimmed());
      if (active) this._row -= gone.length;
      buf.lines.length = Math.min(buf.lines.length, rows);
      for (const l of buf.lines) l.resize(cols);
      while (buf.lines.length < rows) buf.lines.push(new Line(cols));
      if (buf.saved) {
        buf.saved.row = Math.max(0, Math.min(buf.saved.row - gone.length, rows - 1));
        buf.saved.col = Math.min(buf.saved.col, cols - 1);
      }
    }
    this.rows = rows;
    this.cols = cols;
    this._row = Math.min(this._row, rows - 1);
    this._col = Math.min(this._col, cols - 1);
    this._top = 0;
    this._bottom = rows - 1;
    this._dirty = new Uint8Array(rows);
    this._markAll();
    this._trimScrollback();
  }
}

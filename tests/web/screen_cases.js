// The terminal emulator (src/hub/web/screen.js) on what programs print: cursor movement and
// editing, wrapping, scroll regions, the alternate screen, attributes, replies, split input.
// tests/it/webui.rs evaluates this in a page the hub served; it yields the failures, if any.
(async () => {
const { Screen } = await import("/ui/screen.js");
const assert = {
  equal(got, want) {
    if (got !== want) throw new Error(`got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  },
  deepEqual(got, want) {
    const [g, w] = [JSON.stringify(got), JSON.stringify(want)];
    if (g !== w) throw new Error(`got ${g}, want ${w}`);
  },
  ok(v, message) {
    if (!v) throw new Error(message || "not true");
  },
};
const failures = [];
function t(name, fn) {
  try {
    fn();
  } catch (e) {
    failures.push(`${name}: ${e.message}`);
  }
}
const enc = (s) => new TextEncoder().encode(s);
const attr = (s, r, c) => s.getLine(r).attrs[c];

t('bash prompt editing', () => {
  const s = new Screen(5, 40);
  s.write('$ echo helo');
  s.write('\b\b\x1b[K'); // erase "lo"
  s.write('llo');
  assert.equal(s.text(), '$ echo hello');
  s.write('\r\x1b[C\x1b[C\x1b[Cxx'); // overwrite at col 3
  assert.equal(s.text(), '$ exxo hello');
  assert.deepEqual(s.cursor, { row: 0, col: 5 });
  s.write('\x1b[3D\x1b[K');
  assert.equal(s.text(), '$');
  // readline insert via ICH
  s.write('ac\b\x1b[@b');
  assert.equal(s.text(), '$ abc');
  s.write('\x1b[2D\x1b[P');
  assert.equal(s.text(), '$ bc');
});

t('wrap and pending wrap', () => {
  const s = new Screen(4, 10);
  s.write('0123456789');
  assert.deepEqual(s.cursor, { row: 0, col: 9 }); // pending wrap: stays at last column
  s.write('\r\n');
  assert.deepEqual(s.cursor, { row: 1, col: 0 });
  assert.equal(s.text(), '0123456789'); // no empty line produced
  s.write('abcdefghijKL');
  assert.equal(s.text(), '0123456789\nabcdefghij\nKL');
  // BS from pending wrap goes to col 8
  const u = new Screen(2, 5); u.write('abcde\bX'); assert.equal(u.text(), 'abcXe');
  // CR clears pending wrap
  const v = new Screen(2, 5); v.write('abcde\rZ'); assert.equal(v.text(), 'Zbcde');
  // autowrap off
  const w = new Screen(2, 5); w.write('\x1b[?7labcdefg'); assert.equal(w.text(), 'abcdg');
  w.write('\x1b[?7h\r\nabcdefg'); assert.equal(w.text(), 'abcde\nfg'); // scrolled
  assert.deepEqual(w.lines(), ['abcdg', 'abcde', 'fg']);
});

t('scroll region and reverse index', () => {
  const s = new Screen(5, 10);
  s.write('1\r\n2\r\n3\r\n4\r\n5');
  s.write('\x1b[2;4r'); // region rows 2..4
  assert.deepEqual(s.cursor, { row: 0, col: 0 });
  s.write('\x1b[2;1H\x1bM'); // RI at top margin: scroll region down
  assert.equal(s.text(), '1\n\n2\n3\n5');
  s.write('\x1b[4;1H\n'); // LF at bottom margin: scroll region up
  assert.equal(s.text(), '1\n2\n3\n\n5');
  assert.equal(s.scrollback.length, 0);
  s.write('\x1b[2;1H\x1b[L'); // IL
  assert.equal(s.text(), '1\n\n2\n3\n5');
  s.write('\x1b[M\x1b[M'); // DL x2
  assert.equal(s.text(), '1\n3\n\n\n5');
  s.write('\x1b[r'); // reset region, home
  assert.deepEqual(s.cursor, { row: 0, col: 0 });
  s.write('\x1bM'); // RI at row 0 of full screen: scroll down
  assert.equal(s.text(), '\n1\n3');
  s.write('\x1b[5;1H\n'); // scroll up full screen: goes to scrollback
  assert.deepEqual(s.lines().slice(0, 1), ['']);
  assert.equal(s.scrolledOut, 1);
  // SU / SD
  const u = new Screen(3, 5); u.write('a\r\nb\r\nc\x1b[S'); assert.equal(u.text(), 'b\nc');
  u.write('\x1b[2T'); assert.equal(u.text(), '\n\nb');
});

t('origin mode', () => {
  const s = new Screen(6, 10);
  s.write('\x1b[3;5r\x1b[?6h');
  assert.deepEqual(s.cursor, { row: 2, col: 0 });
  s.write('\x1b[10;1H'); assert.deepEqual(s.cursor, { row: 4, col: 0 });
  let reply = ''; s.onReply = (r) => (reply += r);
  s.write('\x1b[6n'); assert.equal(reply, '\x1b[3;1R');
});

t('alternate screen', () => {
  const s = new Screen(4, 10);
  s.write('main1\r\nmain2');
  s.write('\x1b[?1049h');
  assert.equal(s.altScreen, true);
  assert.equal(s.text(), '');
  s.write('\x1b[Halt\x1b[3;3Hx');
  assert.equal(s.text(), 'alt\n\n  x');
  for (let i = 0; i < 10; i++) s.write('\r\n'); // no scrollback from alt screen
  assert.equal(s.scrollback.length, 0);
  s.write('\x1b[?1049l');
  assert.equal(s.altScreen, false);
  assert.equal(s.text(), 'main1\nmain2');
  assert.deepEqual(s.cursor, { row: 1, col: 5 });
  s.write('\x1b[?47hfoo\x1b[?47l'); assert.equal(s.text(), 'main1\nmain2');
  s.write('\x1b[?47h'); assert.equal(s.text(), '\n     foo'); // 47 does not clear
  s.write('\x1b[?47l\x1b[?1047h'); assert.equal(s.text(), ''); s.write('\x1b[?1047l');
});

t('clear + home', () => {
  const s = new Screen(3, 10);
  s.write('abc\r\ndef\r\nghi\x1b[2J');
  assert.equal(s.text(), '');
  assert.deepEqual(s.cursor, { row: 2, col: 3 });
  s.write('\x1b[Hx'); assert.equal(s.text(), 'x');
  s.write('\r\nyy\r\nzzz\x1b[2;2H\x1b[J'); assert.equal(s.text(), 'x\ny');
  s.write('\x1b[1;1H\x1b[3J'); assert.equal(s.scrollback.length, 0);
  const u = new Screen(3, 10); u.write('abc\r\ndef\r\nghi\x1b[2;2H\x1b[1J'); assert.equal(u.text(), '\n  f\nghi');
  u.write('\x1b[3;2H\x1b[1K'); assert.equal(u.text(), '\n  f\n  i');
  u.write('\x1b[2K'); assert.equal(u.text(), '\n  f');
  u.write('\x1b[2;1H12345678\x1b[2;3H\x1b[3X'); assert.equal(u.text(), '\n12   678');
});

t('SGR', () => {
  const s = new Screen(2, 40);
  s.write('a\x1b[1;31mb\x1b[0mc\x1b[38;5;200md\x1b[48;2;1;2;3me\x1b[m\x1b[7;4mf\x1b[27;24mg\x1b[92;104mh\x1b[39;49mi');
  assert.equal(s.text(), 'abcdefghi');
  assert.deepEqual(attr(s, 0, 0), { fg: -1, bg: -1, flags: 0 });
  assert.equal(attr(s, 0, 1).fg, 1); assert.equal(attr(s, 0, 1).flags & 1, 1);
  assert.deepEqual(attr(s, 0, 2), { fg: -1, bg: -1, flags: 0 });
  assert.equal(attr(s, 0, 3).fg, 200);
  assert.equal(attr(s, 0, 4).bg, 0x1000000 | 0x010203); assert.equal(attr(s, 0, 4).fg, 200);
  assert.equal(attr(s, 0, 5).flags, 16 | 8);
  assert.equal(attr(s, 0, 6).flags, 0);
  assert.equal(attr(s, 0, 7).fg, 10); assert.equal(attr(s, 0, 7).bg, 12);
  assert.deepEqual(attr(s, 0, 8), { fg: -1, bg: -1, flags: 0 });
  s.write('\r\n\x1b[38:2::10:20:30mx\x1b[38:5:9;4:0my\x1b[58;2;1;2;3;1mz');
  assert.equal(attr(s, 1, 0).fg, 0x1000000 | 0x0a141e);
  assert.equal(attr(s, 1, 1).fg, 9);
  assert.equal(attr(s, 1, 2).flags, 1); // 58's args not misread; bold set
  // erase uses background colour
  s.write('\x1b[m\x1b[44m\x1b[K'); assert.equal(attr(s, 1, 10).bg, 4); assert.equal(attr(s, 1, 10).fg, -1);
  // CSI > 4;2 m is not SGR
  const u = new Screen(1, 10); u.write('\x1b[>4;2mq'); assert.deepEqual(attr(u, 0, 0), { fg: -1, bg: -1, flags: 0 });
});

t('UTF-8 split across writes', () => {
  const s = new Screen(2, 20);
  const b = enc('héllo €uro 😀!');
  for (let i = 0; i < b.length; i++) s.write(b.subarray(i, i + 1));
  assert.equal(s.text(), 'héllo €uro 😀!');
  assert.deepEqual(s.cursor, { row: 0, col: 14 }); // the emoji takes two cells
  const u = new Screen(2, 20); const e = enc('€');
  u.write(e.subarray(0, 2)); assert.equal(u.text(), ''); u.write(e.subarray(2)); assert.equal(u.text(), '€');
  const c = new Screen(1, 10); c.write('e\u0301x'); assert.equal(c.text(), 'e\u0301x'); assert.deepEqual(c.cursor, { row: 0, col: 2 });
});

t('escape sequences split across writes', () => {
  const s = new Screen(3, 20);
  const seq = 'ab\x1b[1;31mc\x1b[2;5Hd\x1b]0;my title\x07e\x1b]2;t2\x1b\\f';
  for (const ch of seq) s.write(ch);
  assert.equal(s.text(), 'abc\n    def');
  assert.equal(attr(s, 0, 2).fg, 1);
  assert.equal(s.title, 't2');
  const u = new Screen(3, 20);
  const b = enc(seq);
  for (let i = 0; i < b.length; i += 3) u.write(b.subarray(i, i + 3));
  assert.equal(u.text(), 'abc\n    def');
});

t('DSR / DA replies', () => {
  const s = new Screen(10, 20);
  const replies = []; s.onReply = (r) => replies.push(r);
  s.write('\x1b[5;7H\x1b[6n\x1b[5n\x1b[c\x1b[0c\x1b[>c\x1b[?6n');
  assert.deepEqual(replies, ['\x1b[5;7R', '\x1b[0n', '\x1b[?1;2c', '\x1b[?1;2c', '\x1b[?5;7R']);
  assert.equal(s.text(), '');
});

t('resize', () => {
  const s = new Screen(5, 10);
  s.write('1\r\n2\r\n3\r\n4\r\n5');
  s.resize(3, 10); // cursor on row 4 -> top 2 rows to scrollback
  assert.equal(s.text(), '3\n4\n5');
  assert.deepEqual(s.scrollback.map((l) => l.text()), ['1', '2']);
  assert.deepEqual(s.cursor, { row: 2, col: 1 });
  s.resize(6, 10);
  assert.equal(s.text(), '3\n4\n5'); assert.equal(s.rows, 6);
  s.write('\r\nsix'); assert.deepEqual(s.cursor, { row: 3, col: 3 });
  s.write('\x1b[H0123456789');
  s.resize(6, 5); assert.equal(s.text().split('\n')[0], '01234');
  s.resize(6, 12); assert.equal(s.text().split('\n')[0], '01234');
  assert.equal(s.getLine(0).chars.length, 12);
  // shrink with cursor at top keeps top, drops bottom
  const u = new Screen(5, 10); u.write('a\r\nb\r\nc\x1b[H'); u.resize(2, 10); assert.equal(u.text(), 'a\nb'); assert.equal(u.scrollback.length, 0);
  // pending wrap + grow cols: next char continues the line
  const w = new Screen(3, 5); w.write('abcde'); w.resize(3, 8); w.write('f'); assert.equal(w.text(), 'abcdef');
  // in alt screen, resize keeps main content
  const a = new Screen(5, 10); a.write('1\r\n2\r\n3\r\n4\r\n5\x1b[?1049h\x1b[Hx'); a.resize(3, 10); a.write('\x1b[?1049l');
  assert.equal(a.text(), '3\n4\n5'); assert.deepEqual(a.cursor, { row: 2, col: 1 });
});

t('tabs, charsets, unknown sequences', () => {
  const s = new Screen(3, 30);
  s.write('a\tb\tc'); assert.equal(s.text(), 'a       b       c');
  s.write('\r\n\x1b(0lqqk\x1b(B x'); assert.equal(s.text().split('\n')[1], '┌──┐ x');
  s.write('\r\n\x1b[?1000h\x1b[?1006h\x1b[22;0t\x1b[2 q\x1b[?2026$p\x1bP+q544e\x1b\\\x1b_apc\x1b\\\x1b[>0q\x1b=\x1b>\x1b[?u\x1b[?12hok');
  assert.equal(s.text().split('\n')[2], 'ok');
  assert.equal(s.applicationCursor, false);
  s.write('\x1b[?1h\x1b[?2004h\x1b[?25l'); assert.ok(s.applicationCursor && s.bracketedPaste && !s.cursorVisible);
  s.write('\x1bc'); assert.ok(!s.applicationCursor && !s.bracketedPaste && s.cursorVisible); assert.equal(s.text(), '');
  // CAN aborts, C0 inside CSI executes
  const u = new Screen(2, 10); u.write('ab\x1b[1\x18c\x1b[2\rD'); assert.equal(u.text(), 'abc'); assert.deepEqual(u.cursor, {row: 0, col: 0});
  // REP
  const r = new Screen(2, 10); r.write('x\x1b[4b'); assert.equal(r.text(), 'xxxxx');
  // insert mode
  const i = new Screen(2, 10); i.write('abc\r\x1b[4hX\x1b[4lY'); assert.equal(i.text(), 'XYbc');
  // save/restore
  const v = new Screen(3, 10); v.write('\x1b[2;3H\x1b7\x1b[H\x1b8Z\x1b[s\x1b[3;1H\x1b[uQ'); assert.equal(v.text(), '\n  ZQ');
});

t('scrollback limit and dirty tracking', () => {
  const s = new Screen(3, 10, 100);
  s.takeDirty();
  s.write('x'); assert.deepEqual([...s.takeDirty()], [0]);
  for (let i = 0; i < 1000; i++) s.write(`line${i}\r\n`);
  assert.equal(s.scrollback.length, 100);
  assert.equal(s.scrolledOut, 998);
  assert.equal(s.scrollback[99].text(), 'line997');
  assert.deepEqual([...s.takeDirty()].sort(), [0, 1, 2]);
  s.write('\x1b[2;1H'); assert.equal(s.takeDirty().size, 0);
});


t('more: tabs, SO/SI, DECSTR, C1, OSC split', () => {
  const s = new Screen(3, 30);
  s.write('ab\x1b[2Ic\x1b[Zd'); assert.equal(s.text(), 'ab              d');
  const u = new Screen(2, 30); u.write('\x1b[20G\x1b[Zx\x1b[2Zy'); assert.equal(u.text(), '        y       x');
  const v = new Screen(2, 20); v.write('\x1b)0a\x0eqx\x0fq'); assert.equal(v.text(), 'a─│q');
  const w = new Screen(2, 20); w.write('\x1b[1;31m\x1b[5;10r\x1b[?7l\x1b[!pX'); assert.deepEqual(w.getLine(0).attrs[0], { fg: -1, bg: -1, flags: 0 });
  w.write('\r\n' + 'y'.repeat(25)); assert.deepEqual(w.lines(), ['X', 'y'.repeat(20), 'yyyyy']); assert.equal(w.lines().length, 3);
  const c = new Screen(2, 20); c.write('a\u0085b\u009bc'); assert.equal(c.text(), 'abc');
  const o = new Screen(2, 20); o.write('\x1b]2;ti'); o.write('tle\x1b'); o.write('\\ok'); assert.equal(o.title, 'title'); assert.equal(o.text(), 'ok');
  const d = new Screen(2, 20); d.write('\x1bP1$r0m\x1b\\\x1b]8;;http://x\x07link\x1b]8;;\x07\x1b^pm\x1b\\!'); assert.equal(d.text(), 'link!');
  const e = new Screen(3, 20); e.write('ab\x1bEcd\x1b8Z'); assert.equal(e.text(), 'Zb\ncd');
  const bel = new Screen(2, 20); bel.write('a\x07b\x00c'); assert.equal(bel.text(), 'abc');
  // OSC aborted by ESC [ (not ST): the CSI still runs
  const ab = new Screen(2, 20); ab.write('\x1b]0;x\x1b[31mred'); assert.equal(ab.text(), 'red'); assert.equal(ab.getLine(0).attrs[0].fg, 1);
});

t('ED 3 and scrollback numbering', () => {
  const s = new Screen(2, 10, 3);
  s.write('1\r\n2\r\n3\r\n4\r\n5\r\n6');
  assert.equal(s.scrolledOut, 4); assert.deepEqual(s.scrollback.map((l) => l.text()), ['2', '3', '4']);
  s.write('\x1b[3J'); assert.equal(s.scrollback.length, 0); assert.equal(s.scrolledOut, 4);
  assert.equal(s.text(), '5\n6');
});
t('wide characters take two cells', () => {
  const s = new Screen(3, 6);
  s.write('a中b');
  assert.deepEqual(s.getLine(0).chars.slice(0, 4), ['a', '中', '', 'b']);
  assert.deepEqual(s.cursor, { row: 0, col: 4 });
  assert.equal(s.text(), 'a中b');
  // One that does not fit in the last column goes whole to the next line.
  s.write('x語');
  assert.equal(s.text(), 'a中bx\n語');
  assert.deepEqual(s.cursor, { row: 1, col: 2 });
  // Astral ones (emoji) too; a combining mark joins the character, not its second cell.
  const e = new Screen(2, 10); e.write('\u{1f600}e\u0301');
  assert.deepEqual(e.getLine(0).chars.slice(0, 3), ['\u{1f600}', '', 'e\u0301']);
  const m = new Screen(2, 10); m.write('中\u0301');
  assert.deepEqual(m.getLine(0).chars.slice(0, 2), ['中\u0301', '']);
  // Writing over either half blanks the other: no half character is left to draw.
  const o = new Screen(2, 10); o.write('中文\x1b[1GX');
  assert.deepEqual(o.getLine(0).chars.slice(0, 4), ['X', ' ', '文', '']);
  o.write('\x1b[4GY');
  assert.deepEqual(o.getLine(0).chars.slice(0, 4), ['X', ' ', ' ', 'Y']);
  // Erasing, inserting and deleting through the middle of one do the same.
  const r = new Screen(2, 10); r.write('中文字\x1b[4G\x1b[K');
  assert.deepEqual(r.getLine(0).chars.slice(0, 4), ['中', '', ' ', ' ']);
  const d = new Screen(2, 10); d.write('中文\x1b[2G\x1b[P');
  assert.deepEqual(d.getLine(0).chars.slice(0, 3), [' ', '文', '']);
  const i = new Screen(2, 4); i.write('ab中\x1b[1G\x1b[@');
  assert.deepEqual(i.getLine(0).chars, [' ', 'a', 'b', ' ']);
  // REP repeats a wide character as wide; a narrower screen cuts one in half away.
  const p = new Screen(2, 10); p.write('中\x1b[2b'); assert.equal(p.text(), '中中中');
  assert.deepEqual(p.cursor, { row: 0, col: 6 });
  p.resize(2, 5); assert.equal(p.text(), '中中');
  // Narrow symbols stay narrow.
  const n = new Screen(2, 10); n.write('é→★'); assert.deepEqual(n.cursor, { row: 0, col: 3 });
});
return failures;
})()

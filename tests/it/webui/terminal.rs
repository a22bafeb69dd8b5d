//! The page's terminal: a shell typed into and resized, a watched job drawn at its size,
//! redialling a restarted hub, a big output opened at its end, and the emulator's cases
//! (tests/web/screen_cases.js).

use super::{
    assert_no_errors, assert_no_errors_but, shown_job, sign_in, text_of, type_into, type_line,
    wait_lines,
};
use crate::browser::{Browser, CTRL};
use crate::util::{Hub, TIMEOUT};

#[test]
fn a_user_signs_in_runs_a_shell_types_into_it_and_comes_back() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 2);
    let alice = hub.new_token("alice", "user");
    let b = Browser::launch();
    b.goto(&hub.url);
    b.wait_for(
        "the sign-in form",
        "!document.getElementById('signin').hidden",
    );
    // A wrong token is refused in the hub's words.
    type_into(&b, "token", &format!("xn_{}", "0".repeat(64)));
    b.key("Enter", 0);
    b.wait_for(
        "the refusal",
        "document.getElementById('signin-error').textContent.includes('not valid')",
    );
    sign_in(&b, &hub, &alice);
    assert_eq!(text_of(&b, "who"), "alice (user)");

    type_into(&b, "command", "PS1='web$ ' exec bash --norc --noprofile");
    b.key("Enter", 0);
    let id = shown_job(&b);
    b.wait_for(
        "the prompt",
        "document.getElementById('terminal').innerText.includes('web$')",
    );
    type_line(&b, "echo $((6*7))");
    wait_lines(&b, "42", 1);
    // History through the arrow key, then Ctrl-C through the terminal's line discipline.
    b.key("ArrowUp", 0);
    b.key("Enter", 0);
    wait_lines(&b, "42", 2);
    // Ctrl-C once the sleep runs: typed before, it would interrupt the shell's line editor
    // and leave the sleep to run.
    type_line(&b, "echo sleeping; sleep 300");
    wait_lines(&b, "sleeping", 1);
    b.key("c", CTRL);
    type_line(&b, "echo after");
    wait_lines(&b, "after", 1);

    // The job's terminal takes the page's size, and follows the window when it shrinks.
    type_line(&b, "stty size");
    let size = |b: &Browser| -> (u32, u32) {
        let text = text_of(b, "terminal");
        let line = text
            .lines()
            .rev()
            .find(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.len() == 2 && w.iter().all(|n| n.parse::<u32>().is_ok())
            })
            .unwrap_or_default()
            .to_string();
        let mut w = line.split_whitespace().map(|n| n.parse().unwrap_or(0));
        (w.next().unwrap_or(0), w.next().unwrap_or(0))
    };
    b.wait_for(
        "stty's answer",
        "/^\\d+ \\d+$/m.test(document.getElementById('terminal').innerText)",
    );
    let (rows, cols) = size(&b);
    assert!(rows > 10 && cols > 80, "{rows} {cols}");
    b.call(
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({"width": 600, "height": 500, "deviceScaleFactor": 1, "mobile": false}),
    );
    // The page sends its new size as it redraws its rows for it.
    b.wait_for(
        "the page's terminal to shrink",
        &format!("document.querySelectorAll('#terminal .xt-screen .xt-row').length < {rows}"),
    );
    b.eval("document.querySelector('#terminal textarea').focus()");
    b.insert_text("clear; stty size");
    b.key("Enter", 0);
    b.wait_for(
        "a smaller terminal",
        &format!(
            "(m => m && Number(m[2]) < {cols})(document.getElementById('terminal').innerText.match(/^(\\d+) (\\d+)$/m))"
        ),
    );

    // Away to the list: the job is running there; back: everything it printed is shown.
    b.eval("location.hash = '#/'");
    b.wait_for(
        "the job running in the list",
        &format!("document.querySelector('#job-table tr[data-id=\"{id}\"] .state')?.textContent === 'running'"),
    );
    b.eval(&format!("location.hash = '#/job/{id}'"));
    b.wait_for(
        "the replayed screen",
        "document.getElementById('terminal').innerText.includes('web$')",
    );
    type_line(&b, "exit 3");
    b.wait_for(
        "the end",
        "document.getElementById('job-status').textContent.includes('the job ended: exited (3)')",
    );
    let rec = hub.wait_ended(id);
    assert_eq!(
        (rec.exit_code, rec.owner.as_deref()),
        (Some(3), Some("alice"))
    );
    let out = String::from_utf8_lossy(&hub.fetch(id)).to_string();
    assert_eq!(out.matches("42\r\n").count(), 2, "{out}");
    assert!(out.contains("^C"), "{out}");
    assert_no_errors(&b);
}

#[test]
fn the_page_dials_a_restarted_hub_again_and_loses_nothing() {
    let mut hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let b = Browser::launch();
    sign_in(&b, &hub, &hub.token);
    // Half the lines before the hub goes, the rest once it has gone (the gate): line60 can then
    // only reach the page through the restarted hub with the slave back on it, so the line
    // typed after it reaches the job. Printed before the kill, all 60 could be on the page of
    // a slow browser before it saw the hub go, and the line typed into the dead connection
    // would be lost.
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("go");
    let id = hub.submit(
        &format!(
            "for i in $(seq 1 30); do echo line$i; done; \
             while [ ! -e {} ]; do sleep 0.05; done; \
             for i in $(seq 31 60); do echo line$i; sleep 0.05; done; read x; echo got $x",
            gate.display()
        ),
        &[],
    );
    b.eval(&format!("location.hash = '#/job/{id}'"));
    wait_lines(&b, "line30", 1);
    hub.kill();
    std::fs::write(&gate, "").unwrap();
    hub.restart(&[]);
    wait_lines(&b, "line60", 1);
    type_line(&b, "back");
    wait_lines(&b, "got back", 1);
    let text = text_of(&b, "terminal");
    for i in 1..=60 {
        let n = text.lines().filter(|l| *l == format!("line{i}")).count();
        assert_eq!(n, 1, "line{i} shown {n} times:\n{text}");
    }
    // The browser logs the refused connections while the hub was down; nothing else.
    assert_no_errors_but(&b, &["ERR_CONNECTION_REFUSED", "WebSocket connection to"]);
}

#[test]
fn a_big_output_opens_at_its_end() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    // 2 MB of NUL bytes between two words: a terminal draws nothing for NUL.
    let id = hub.submit(
        "printf 'FIRST\\n'; head -c 2000000 /dev/zero; printf '\\nEND\\n'",
        &["--no-tty"],
    );
    hub.wait_ended(id);
    let b = Browser::launch();
    sign_in(&b, &hub, &hub.token);
    b.eval(&format!("location.hash = '#/job/{id}'"));
    wait_lines(&b, "END", 1);
    let text = text_of(&b, "terminal");
    assert!(
        !text.contains("FIRST"),
        "the page read the whole output:\n{text}"
    );
    let note = text_of(&b, "job-skipped");
    assert!(note.contains("0.5 MiB of 1.9 MiB"), "{note}");
    assert_no_errors(&b);
}

#[test]
fn a_big_output_cut_inside_a_character_opens_at_the_next_one() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    // The last 512 KiB, where the view starts: the last two bytes of a euro sign (E2 82 AC),
    // ten whole ones, NUL bytes (drawn as nothing) and END.
    let tail = 512 * 1024;
    let nuls = tail - 2 - 10 * 3 - "\nEND\n".len();
    let euros = "\\342\\202\\254".repeat(20);
    let id = hub.submit(
        &format!("printf '{euros}'; head -c {nuls} /dev/zero; printf '\\nEND\\n'"),
        &["--no-tty"],
    );
    assert_eq!(hub.wait_ended(id).stdout_len, 20 * 3 + nuls as u64 + 5);
    // A job whose output starts with stray continuation bytes, shown from its first byte:
    // nothing left out there.
    let whole = hub.submit("printf '\\200\\200whole\\n'", &["--no-tty"]);
    hub.wait_ended(whole);
    let b = Browser::launch();
    sign_in(&b, &hub, &hub.token);
    b.eval(&format!("location.hash = '#/job/{id}'"));
    wait_lines(&b, "END", 1);
    let text = text_of(&b, "terminal");
    assert!(
        text.lines().any(|l| l.trim_end() == "\u{20ac}".repeat(10)),
        "the view should open with the ten whole euro signs:\n{text}"
    );
    assert!(!text.contains('\u{fffd}'), "{text}");
    b.eval(&format!("location.hash = '#/job/{whole}'"));
    wait_lines(&b, "\u{fffd}\u{fffd}whole", 1);
    assert_no_errors(&b);
}

#[test]
fn the_terminal_draws_what_full_screen_programs_print() {
    let hub = Hub::start();
    let b = Browser::launch();
    b.goto(&hub.url);
    let failures = b.eval(include_str!("../../web/screen_cases.js"));
    assert_eq!(
        failures,
        serde_json::json!([]),
        "the emulator's cases that failed"
    );
    // The page the cases ran in is the real one, under its Content-Security-Policy.
    assert_no_errors(&b);
}

/// A page that only watches a job draws it at the size the client typing into it set, as that
/// changes, and an ended job at the size it had last: a full-screen program's output laid out
/// for 40x120 is not drawn in 24x80.
#[test]
fn a_watching_page_draws_the_job_at_its_attached_clients_size() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let id = hub.submit("env PS1='xn$ ' bash --norc --noprofile -i", &[]);
    hub.wait_state(id, execnode::wire::JobState::Running);
    let mut t = crate::term::Term::xn(&hub, &["-a", &id.to_string()], 30, 100);
    t.wait_for("xn$ ");
    t.send(b"stty size\r");
    t.wait_for("30 100\r\n");
    let viewer = hub.new_token("watch", "viewer");
    let b = Browser::launch();
    sign_in(&b, &hub, &viewer);
    b.eval(&format!("location.hash = '#/job/{id}'"));
    let rows = |n: u16| {
        format!("document.querySelectorAll('#terminal .xt-screen .xt-row').length === {n}")
    };
    b.wait_for("the attached client's 30 rows", &rows(30));
    t.resize(40, 120);
    // The resize reaches the job on its own path, not in order with the keys typed after it
    // (as in attach::bash_sees_the_clients_size_and_resizes): ask until it shows.
    let start = std::time::Instant::now();
    while !t.text().contains("40 120\r\n") {
        assert!(start.elapsed() < TIMEOUT, "{}", t.text());
        t.send(b"stty size\r");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    b.wait_for("40 rows", &rows(40));
    t.send(b"exit\r");
    assert_eq!(t.wait_exit().code(), Some(0));
    hub.wait_ended(id);
    b.eval("location.hash = '#/'");
    b.eval(&format!("location.hash = '#/job/{id}'"));
    b.wait_for(
        "the ended job",
        "document.getElementById('job-status').textContent.includes('the job ended')",
    );
    b.wait_for("the ended job's 40 rows", &rows(40));
    assert_no_errors(&b);
}

/// A wide character (CJK, most emoji) is drawn two cells wide whatever the font makes of it,
/// so what follows it lines up with the columns the job counted (by wcwidth).
#[test]
fn wide_characters_take_two_cells_on_the_page() {
    let hub = Hub::start();
    let _s = hub.slave("s1", 1);
    let id = hub.submit("printf 'ab|\\n中|\\n\\360\\237\\230\\200|\\n'", &[]);
    hub.wait_ended(id);
    let b = Browser::launch();
    sign_in(&b, &hub, &hub.token);
    b.eval(&format!("location.hash = '#/job/{id}'"));
    wait_lines(&b, "中|", 1);
    // Where the `|` of each row starts, in cells from the row's left edge.
    let bars = b.eval(
        "(() => {
           const cell = document.querySelector('.xt-measure span').getBoundingClientRect().width / 50;
           return [...document.querySelectorAll('#terminal .xt-screen .xt-row')]
             .filter((row) => row.textContent.includes('|'))
             .map((row) => {
               const range = document.createRange();
               const walker = document.createTreeWalker(row, NodeFilter.SHOW_TEXT);
               for (let n = walker.nextNode(); n; n = walker.nextNode()) {
                 const at = n.textContent.indexOf('|');
                 if (at < 0) continue;
                 range.setStart(n, at);
                 range.setEnd(n, at + 1);
                 const left = range.getBoundingClientRect().left - row.getBoundingClientRect().left;
                 return Math.round(left / cell * 10) / 10;
               }
             });
         })()",
    );
    assert_eq!(bars, serde_json::json!([2, 2, 2]));
    assert_no_errors(&b);
}

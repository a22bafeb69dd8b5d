//! Unit tests of the outbox: drops while the hub is away, the in-flight window, the instance id.

use super::*;
use crate::limits::SLAVE_WINDOW_BYTES;

#[test]
fn overflow_while_disconnected_drops_oldest_unsent_with_a_marker() {
    let ob = Outbox::new(MAX_DATA_CHUNK);
    let (tx, _rx) = mpsc::unbounded_channel();
    let run = ob.add(1, None, true, tx).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        ob.push(run, Stream::Stdout, &[b'a'; 100]).await;
        // Send the first 100 bytes (as a session would); they must survive.
        let items = ob.take(0, &mut Vec::with_capacity).unwrap();
        assert_eq!(items.len(), 1);
        ob.push(run, Stream::Stdout, &vec![b'b'; MAX_DATA_CHUNK])
            .await;
        ob.push(run, Stream::Stdout, b"last").await;
    });
    let jobs = ob.lock();
    let buf: Vec<u8> = jobs[&1].out[0].buf.iter().copied().collect();
    assert!(buf.starts_with(&[b'a'; 100]));
    assert!(String::from_utf8_lossy(&buf).contains("bytes of output dropped here"));
    assert!(buf.ends_with(b"last"));
    assert!(buf.len() <= MAX_DATA_CHUNK + 200);
}

#[test]
fn a_drop_marker_after_a_whole_line_adds_no_blank_line_and_ends_lines_as_the_job_does() {
    // A pipes job's lines end in `\n`, a terminal's in `\r\n`.
    for (tty, nl) in [(false, "\n"), (true, "\r\n")] {
        let ob = Outbox::new(MAX_DATA_CHUNK);
        let (tx, _rx) = mpsc::unbounded_channel();
        let run = ob.add(1, None, tty, tx).unwrap();
        block_on(async {
            ob.push(run, Stream::Stdout, format!("sent{nl}").as_bytes())
                .await;
            ob.take(0, &mut Vec::with_capacity).unwrap();
            ob.push(run, Stream::Stdout, &vec![b'b'; MAX_DATA_CHUNK])
                .await;
            ob.push(run, Stream::Stdout, b"last").await;
        });
        let jobs = ob.lock();
        let buf: Vec<u8> = jobs[&1].out[0].buf.iter().copied().collect();
        let text = String::from_utf8_lossy(&buf);
        assert!(
            text.starts_with(&format!("sent{nl}[execnode: ")),
            "{text:?}"
        );
        assert!(text.contains(&format!("unreachable]{nl}")), "{text:?}");
        assert_eq!(text.contains('\r'), tty, "{text:?}");
    }
}

#[test]
fn drops_in_a_row_are_counted_in_one_marker() {
    let ob = Outbox::new(MAX_DATA_CHUNK);
    let (tx, _rx) = mpsc::unbounded_channel();
    let run = ob.add(1, None, true, tx).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let total = 10 * MAX_DATA_CHUNK;
    rt.block_on(async {
        for _ in 0..total / 1000 {
            ob.push(run, Stream::Stdout, &[b'x'; 1000]).await;
        }
    });
    let jobs = ob.lock();
    let text = String::from_utf8_lossy(&jobs[&1].out[0].buf.iter().copied().collect::<Vec<u8>>())
        .into_owned();
    assert_eq!(text.matches("dropped here").count(), 1, "one marker");
    let kept = text.chars().filter(|&c| c == 'x').count() - "execnode".matches('x').count();
    let n: usize = text
        .split("[execnode: ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(kept + n, total / 1000 * 1000, "kept + counted = produced");
}

/// The lengths of the data frames in `items`.
fn frame_lens(items: &[Item]) -> Vec<usize> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Data(f) => Some(f.len() - DATA_HEADER_LEN),
            Item::Msg(_) => None,
        })
        .collect()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn small_output_goes_at_once_and_is_coalesced_while_in_flight() {
    let ob = Outbox::new(8 << 20);
    let (tx, _rx) = mpsc::unbounded_channel();
    let run = ob.add(1, None, true, tx).unwrap();
    ob.set_connected(true);
    block_on(ob.push(run, Stream::Stdout, b"a"));
    assert_eq!(
        frame_lens(&ob.take(0, &mut Vec::with_capacity).unwrap()),
        [1],
        "nothing in flight: sent at once"
    );
    for _ in 0..100 {
        block_on(ob.push(run, Stream::Stdout, b"bb"));
    }
    assert!(
        frame_lens(&ob.take(0, &mut Vec::with_capacity).unwrap()).is_empty(),
        "held while in flight"
    );
    ob.ack(1, Stream::Stdout, 1).unwrap();
    assert_eq!(
        frame_lens(&ob.take(0, &mut Vec::with_capacity).unwrap()),
        [200],
        "one coalesced frame"
    );
}

#[test]
fn the_window_bounds_what_is_in_flight_and_acks_reopen_it() {
    let ob = Outbox::new(8 << 20);
    let (tx, _rx) = mpsc::unbounded_channel();
    let run = ob.add(1, None, true, tx).unwrap();
    let total = 3 * SLAVE_WINDOW_BYTES as usize;
    block_on(ob.push(run, Stream::Stdout, &vec![b'x'; total]));
    let first = frame_lens(&ob.take(0, &mut Vec::with_capacity).unwrap());
    assert_eq!(first.iter().sum::<usize>() as u64, SLAVE_WINDOW_BYTES);
    assert!(first.iter().all(|&n| n == MAX_DATA_CHUNK));
    assert!(
        frame_lens(&ob.take(0, &mut Vec::with_capacity).unwrap()).is_empty(),
        "window full"
    );
    ob.ack(1, Stream::Stdout, MAX_DATA_CHUNK as u64).unwrap();
    assert_eq!(
        frame_lens(&ob.take(0, &mut Vec::with_capacity).unwrap()),
        [MAX_DATA_CHUNK]
    );
}

#[test]
fn refused_frames_reopen_the_window_and_the_end_is_still_sent() {
    let ob = Outbox::new(8 << 20);
    let (tx, _rx) = mpsc::unbounded_channel();
    let run = ob.add(1, None, true, tx).unwrap();
    let total = 2 * SLAVE_WINDOW_BYTES as usize + 5;
    block_on(ob.push(run, Stream::Stdout, &vec![b'x'; total]));
    ob.ended(run, Outcome::Exited { code: 0 });
    let mut sent = 0;
    let mut ended = false;
    // The hub never acknowledges anything: it refuses every frame (a full disk).
    for _ in 0..10 {
        let items = ob.take(0, &mut Vec::with_capacity).unwrap();
        sent += frame_lens(&items).iter().sum::<usize>();
        ended |= items
            .iter()
            .any(|i| matches!(i, Item::Msg(SlaveMsg::Ended { .. })));
        ob.refused();
    }
    assert_eq!(sent, total, "every byte was offered once");
    assert!(ended, "the end was reported");
}

#[test]
fn a_resend_sends_the_stream_again_from_its_offset_and_the_end_after_it() {
    let ob = Outbox::new(8 << 20);
    let (tx, _rx) = mpsc::unbounded_channel();
    let run = ob.add(1, None, true, tx).unwrap();
    let total = 3 * MAX_DATA_CHUNK;
    block_on(ob.push(run, Stream::Stdout, &vec![b'x'; total]));
    ob.ended(run, Outcome::Exited { code: 0 });
    let items = ob.take(0, &mut Vec::with_capacity).unwrap();
    assert_eq!(frame_lens(&items).iter().sum::<usize>(), total);
    assert!(matches!(
        items.last(),
        Some(Item::Msg(SlaveMsg::Ended { .. }))
    ));
    // The hub stored the first frame only; nothing goes again until it asks.
    ob.ack(1, Stream::Stdout, MAX_DATA_CHUNK as u64).unwrap();
    assert!(ob.take(0, &mut Vec::with_capacity).unwrap().is_empty());
    let stored = MAX_DATA_CHUNK as u64;
    ob.resend(1, Stream::Stdout, stored).unwrap();
    let items = ob.take(0, &mut Vec::with_capacity).unwrap();
    let Some(Item::Data(first)) = items.first() else {
        panic!("no frame sent again");
    };
    assert_eq!(DataFrame::decode(first).unwrap().offset, stored);
    assert_eq!(
        frame_lens(&items).iter().sum::<usize>(),
        total - MAX_DATA_CHUNK
    );
    assert!(matches!(
        items.last(),
        Some(Item::Msg(SlaveMsg::Ended { .. }))
    ));
    // Offsets the hub acknowledged, or never got, are not for a resend.
    assert!(ob.resend(1, Stream::Stdout, 0).is_err());
    assert!(ob.resend(1, Stream::Stdout, total as u64 + 1).is_err());
    assert!(ob.resend(2, Stream::Stdout, 0).is_err());
}

#[test]
fn each_outbox_names_its_process_with_an_exact_json_number() {
    let ids: Vec<u64> = (0..8).map(|_| Outbox::new(1).instance).collect();
    assert!(ids.iter().all(|&i| i < 1 << 53), "{ids:?}");
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");
}

#[test]
fn bytes_sent_to_a_hub_that_went_away_do_not_stop_the_job() {
    let limit = MAX_DATA_CHUNK;
    let ob = Outbox::new(limit);
    let (tx, _rx) = mpsc::unbounded_channel();
    let run = ob.add(1, None, true, tx).unwrap();
    ob.set_connected(true);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        ob.push(run, Stream::Stdout, &vec![b'a'; limit]).await;
        // Sent in full (as a session would) to a hub that died before acknowledging any of it.
        let items = ob.take(0, &mut Vec::with_capacity).unwrap();
        assert_eq!(frame_lens(&items), vec![limit]);
        ob.set_connected(false);
        // What was never sent gives way, not the job: it must not wait for the hub.
        let more = async {
            ob.push(run, Stream::Stdout, &vec![b'b'; 2 * limit]).await;
            ob.push(run, Stream::Stdout, b"last").await;
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), more)
            .await
            .expect("the job was held up by output its hub may already have");
    });
    let jobs = ob.lock();
    let buf: Vec<u8> = jobs[&1].out[0].buf.iter().copied().collect();
    assert!(buf.starts_with(&vec![b'a'; limit]), "sent bytes are kept");
    assert!(String::from_utf8_lossy(&buf).contains("bytes of output dropped here"));
    assert!(buf.ends_with(b"last"));
    assert!(buf.len() <= 2 * limit + 200);
}

#[test]
fn a_forgotten_run_does_not_report_for_the_next_run_of_its_job_which_waits_for_it() {
    let ob = Outbox::new(8 << 20);
    ob.set_connected(true);
    let (tx, _rx) = mpsc::unbounded_channel();
    let old = ob.add(1, None, true, tx).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut old_lane = ob.lane(1);
    rt.block_on(old_lane.turn());
    // The hub gave the job up, then assigned it again.
    ob.forget(1);
    let (tx, _rx) = mpsc::unbounded_channel();
    let new = ob.add(1, None, true, tx).unwrap();
    assert_ne!(old, new);
    // The new run's turn comes only once the old run has left the lane.
    rt.block_on(async {
        let mut lane = ob.lane(1);
        let wait = tokio::time::timeout(std::time::Duration::from_millis(50), lane.turn());
        assert!(
            wait.await.is_err(),
            "the new run started beside the old one"
        );
    });
    ob.started(old, 10);
    rt.block_on(ob.push(old, Stream::Stdout, b"old"));
    ob.ended(old, Outcome::Signaled { signal: 9 });
    drop(old_lane);
    let mut turn = ob.lane(1);
    rt.block_on(turn.turn());
    assert_eq!(
        ob.running_count(),
        1,
        "the old run's end was taken for the new one's"
    );
    ob.started(new, 11);
    rt.block_on(ob.push(new, Stream::Stdout, b"new"));
    let frames = frame_lens(&ob.take(0, &mut Vec::with_capacity).unwrap());
    assert_eq!(frames, [3], "only the new run's output is sent");
    drop(turn);
    assert!(
        ob.lanes.lock().unwrap().is_empty(),
        "a lane outlived its runs (one gave up waiting)"
    );
}

#[test]
fn a_run_waiting_for_room_goes_on_when_its_job_is_forgotten() {
    let ob = Outbox::new(MAX_DATA_CHUNK);
    ob.set_connected(true);
    let (tx, _rx) = mpsc::unbounded_channel();
    let run = ob.add(1, None, true, tx).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // The limit is reached and the hub acknowledges nothing: the next push waits.
        ob.push(run, Stream::Stdout, &vec![b'a'; MAX_DATA_CHUNK])
            .await;
        let more = ob.push(run, Stream::Stdout, b"more");
        tokio::pin!(more);
        tokio::select! {
            biased;
            () = &mut more => panic!("no back-pressure"),
            () = std::future::ready(()) => {}
        }
        // The hub gives the job up.
        ob.forget(1);
        tokio::time::timeout(std::time::Duration::from_secs(60), more)
            .await
            .expect("the run still waits for room for a job nobody holds");
    });
}

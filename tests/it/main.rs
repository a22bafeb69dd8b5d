//! Integration tests: the real binary as hub, slaves and `xn`, on loopback, in temp dirs.

mod attach;
mod auth;
mod bad_input;
mod basics;
mod broadcast;
mod cancel;
mod deadpeer;
mod faults;
mod fuzz;
mod golden;
mod jobfiles;
mod labels;
mod netns;
mod quickstart;
mod redial;
mod relay;
mod restart;
mod retention;
mod retries;
mod sandbox;
mod silence;
mod stream;
mod term;
mod tls;
mod util;
mod web;

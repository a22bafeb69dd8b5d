//! A network namespace joined to this one by a veth pair: a peer whose packets a test can make
//! vanish without a FIN or RST (the link goes down), as when a client's machine or route goes
//! away. Needs root and `ip`; `create` says so and returns `None` elsewhere.

use std::path::Path;
use std::process::Command;

pub struct Netns {
    name: String,
    inner_if: String,
    /// The address on this side, which a hub can listen on.
    pub host_ip: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Netns {
    pub fn create() -> Option<Netns> {
        if !crate::util::is_root() {
            eprintln!("skipped: needs root for a network namespace");
            return None;
        }
        let pid = std::process::id();
        let n = pid % 250 + 1;
        let ns = Netns {
            name: format!("xntest{pid}"),
            inner_if: format!("xni{pid}"),
            host_ip: format!("10.213.{n}.1"),
        };
        let host_if = format!("xnh{pid}");
        let host_cidr = format!("{}/30", ns.host_ip);
        let inner_cidr = format!("10.213.{n}.2/30");
        let ok = ip(&["netns", "add", &ns.name])
            && ip(&[
                "link",
                "add",
                &host_if,
                "type",
                "veth",
                "peer",
                "name",
                &ns.inner_if,
                "netns",
                &ns.name,
            ])
            && ip(&["addr", "add", &host_cidr, "dev", &host_if])
            && ip(&["link", "set", &host_if, "up"])
            && ip(&[
                "-n",
                &ns.name,
                "addr",
                "add",
                &inner_cidr,
                "dev",
                &ns.inner_if,
            ])
            && ip(&["-n", &ns.name, "link", "set", &ns.inner_if, "up"])
            && ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        if !ok {
            eprintln!("skipped: could not set up a network namespace with `ip`");
            return None;
        }
        Some(ns)
    }

    /// `program` to run inside the namespace.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Takes the namespace's side of the link down: nothing more arrives either way.
    pub fn cut(&self) {
        assert!(ip(&[
            "-n",
            &self.name,
            "link",
            "set",
            &self.inner_if,
            "down"
        ]));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // The link up again first, so that connections from inside can finish closing: a
        // socket still sending its FIN into a dead link keeps the namespace, and the veth
        // pair, for minutes. Then deleting the namespace deletes both ends of the pair.
        ip(&["-n", &self.name, "link", "set", &self.inner_if, "up"]);
        ip(&["netns", "del", &self.name]);
    }
}

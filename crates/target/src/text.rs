//! Text requests in the full feature phase: SendTargets (RFC 7143 appendix D),
//! with long answers split across PDUs by the Continue bit.

use std::net::SocketAddr;

use iscsi_proto::pdu::{encode_text_response, TextRequest, RESERVED_TAG};
use iscsi_proto::text::parse_text;
use tracing::debug;

use crate::session::Session;

/// A text answer still being sent in pieces.
#[derive(Default)]
pub(crate) struct TextState {
    rest: Vec<u8>,
    ttt: u32,
}

impl Session {
    pub(crate) fn text_request(&mut self, t: TextRequest, data: &[u8]) {
        if !self.accept_cmd_sn(t.immediate, t.cmd_sn) {
            return;
        }
        let answer =
            if t.ttt != RESERVED_TAG && t.ttt == self.text.ttt && !self.text.rest.is_empty() {
                std::mem::take(&mut self.text.rest)
            } else {
                self.text.rest.clear();
                self.answer(data)
            };
        let max = self.params.max_recv_data_segment_length.max(512) as usize;
        let (now, rest) = if answer.len() > max {
            answer.split_at(max)
        } else {
            (&answer[..], &[][..])
        };
        let more = !rest.is_empty();
        let ttt = if more { self.alloc_ttt() } else { RESERVED_TAG };
        self.text = TextState {
            rest: rest.to_vec(),
            ttt,
        };
        let mut seg = self.pool.get();
        seg.extend_from_slice(now);
        let bhs = encode_text_response(!more, more, t.lun, t.itt, ttt, seg.len() as u32);
        self.send(bhs, seg, true);
    }

    fn answer(&self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let pairs = match parse_text(data) {
            Ok(p) => p,
            Err(e) => {
                debug!(initiator = %self.initiator, error = %e, "malformed text request");
                return out;
            }
        };
        for (key, value) in pairs {
            if key == "SendTargets" {
                self.send_targets(value, &mut out);
            } else {
                push_pair(&mut out, key, "NotUnderstood");
            }
        }
        out
    }

    /// Lists the targets this initiator may log into, with every portal.
    fn send_targets(&self, value: &str, out: &mut Vec<u8>) {
        let targets = self.shared.targets();
        let visible = targets.iter().filter(|t| match &self.target {
            // A normal session sees only its own target.
            Some(own) => {
                own.iqn == t.iqn
                    && (value.is_empty() || value == "All" || value.eq_ignore_ascii_case(&t.iqn))
            }
            // Discovery: the targets whose ACL admits this initiator (and,
            // when it authenticated, with the same CHAP user).
            None => {
                (value == "All" || value.eq_ignore_ascii_case(&t.iqn))
                    && t.view().acl_for(&self.initiator).is_some_and(|a| {
                        self.chap_user.is_none()
                            || a.chap_user.is_none()
                            || a.chap_user == self.chap_user
                    })
            }
        });
        for t in visible {
            push_pair(out, "TargetName", &t.iqn);
            for (portal, group) in self.shared.portals_with_groups() {
                let addr = advertised(portal, self.local);
                push_pair(out, "TargetAddress", &format!("{addr},{group}"));
            }
        }
    }
}

/// The address an initiator should use for a portal: a wildcard listen
/// address is replaced by the address this connection arrived on.
fn advertised(portal: SocketAddr, local: SocketAddr) -> SocketAddr {
    if portal.ip().is_unspecified() {
        SocketAddr::new(local.ip(), portal.port())
    } else {
        portal
    }
}

fn push_pair(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value.as_bytes());
    out.push(0);
}

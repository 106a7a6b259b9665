//! "If X then Y" invariants across concurrent edits (spec §13.3, APP-6 to APP-8).
//!
//! An invariant is a pure function from the merged data map to its violations.
//! [`after_merge`] runs the invariants after every merge and compensates each
//! violation by one of three strategies:
//!
//! * [`Strategy::Repair`]: after-merge repair by a deterministic rule (remove the
//!   orphans, or move them under a fixed parent);
//! * [`Strategy::Recreate`]: preemptive: each child carries what it needs to
//!   recreate its parent, and a missing parent is recreated from the child with
//!   the smallest key;
//! * [`Strategy::Surface`]: conflict surfacing: nothing is written; the app is
//!   told, and a user decides with [`resolve`].
//!
//! Every repair is a list of single-key sets and deletes computed from the merged
//! state alone, so every replica that sees the same state computes the same
//! writes; writes that would change nothing are skipped, so a replica repairs a
//! violation once, and identical concurrent repairs merge into one state instead
//! of fighting (APP-7).
//!
//! [`CommentsNeedPost`] is the classic example: a post deleted with its comments
//! while another client, not yet aware, adds a comment to it.

use serde_json::{Value, json};

use clientful_doc::Replica;

use crate::AppError;
use crate::data::{self, Data, MapOp};

/// One violation of an invariant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    /// The invariant's name.
    pub invariant: &'static str,
    /// The key of the record that violates it (e.g. the orphaned comment).
    pub subject: String,
    /// The key of the record it needs (e.g. the missing post).
    pub needs: String,
}

/// How violations are compensated (APP-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Remove the violating records.
    Repair(RepairRule),
    /// Recreate what the violating records need, from what they carry.
    Recreate,
    /// Write nothing; report the violations as conflicts for a user to decide.
    Surface,
}

/// The deterministic after-merge rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairRule {
    /// Delete the orphans.
    RemoveOrphans,
    /// Move the orphans under a fixed parent that the rule creates.
    Reparent,
}

/// What a user decides about a surfaced conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Drop the orphan.
    Drop,
    /// Bring the parent back (from what the orphan carries).
    Recreate,
}

/// An invariant over the data map.
pub trait Invariant {
    /// Its name.
    fn name(&self) -> &'static str;
    /// Its violations in `data`, sorted.
    fn check(&self, data: &Data) -> Vec<Violation>;
    /// The writes that compensate `v` under `rule`, computed from `data` alone.
    fn repair(&self, data: &Data, v: &Violation, strategy: Strategy) -> Vec<MapOp>;
}

/// What [`after_merge`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AfterMerge {
    /// Violations compensated by writes (committed in one envelope).
    pub repaired: Vec<Violation>,
    /// Violations left for a user (strategy [`Strategy::Surface`]).
    pub conflicts: Vec<Violation>,
    /// Writes applied (0: nothing needed).
    pub writes: usize,
}

/// Runs the invariants over the merged state of `r` and compensates (APP-6,
/// APP-7). Call it after every merge; it commits its writes, if any, as one
/// envelope.
pub fn after_merge(
    r: &mut Replica,
    invariants: &[(&dyn Invariant, Strategy)],
) -> Result<AfterMerge, AppError> {
    let data = data::read(r);
    let mut out = AfterMerge::default();
    let mut ops = Vec::new();
    for (inv, strategy) in invariants {
        for v in inv.check(&data) {
            if *strategy == Strategy::Surface {
                out.conflicts.push(v);
            } else {
                ops.extend(inv.repair(&data, &v, *strategy));
                out.repaired.push(v);
            }
        }
    }
    ops.sort();
    ops.dedup();
    out.writes = data::apply_and_commit(r, &ops)?;
    Ok(out)
}

/// Applies a user's decision on a surfaced conflict (APP-8), and commits it.
pub fn resolve(
    r: &mut Replica,
    inv: &dyn Invariant,
    v: &Violation,
    decision: Decision,
) -> Result<usize, AppError> {
    let data = data::read(r);
    let strategy = match decision {
        Decision::Drop => Strategy::Repair(RepairRule::RemoveOrphans),
        Decision::Recreate => Strategy::Recreate,
    };
    let ops = inv.repair(&data, v, strategy);
    data::apply_and_commit(r, &ops)
}

/// Posts and comments in the data map: `post/<id>` holds the title;
/// `comment/<id>` holds `{"post": <id>, "text": ..., "postTitle": ...}`, where
/// `postTitle` is the preemptive copy of the parent. Invariant: every comment's
/// post exists.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommentsNeedPost;

/// The fixed parent of [`RepairRule::Reparent`].
pub const LOST_AND_FOUND: &str = "post/lost-and-found";

/// A comment's JSON value.
pub fn comment_value(post_id: &str, text: &str, post_title: &str) -> String {
    json!({"post": post_id, "text": text, "postTitle": post_title}).to_string()
}

fn comment(value: &str) -> Option<(String, Value)> {
    let v: Value = serde_json::from_str(value).ok()?;
    let post = v.get("post")?.as_str()?.to_string();
    Some((post, v))
}

impl Invariant for CommentsNeedPost {
    fn name(&self) -> &'static str {
        "comments-need-post"
    }

    fn check(&self, data: &Data) -> Vec<Violation> {
        let mut out = Vec::new();
        for (k, v) in data.range("comment/".to_string()..) {
            if !k.starts_with("comment/") {
                break;
            }
            // A comment that does not parse has no parent to need.
            let Some((post, _)) = comment(v) else {
                continue;
            };
            let needs = format!("post/{post}");
            if !data.contains_key(&needs) {
                out.push(Violation {
                    invariant: self.name(),
                    subject: k.clone(),
                    needs,
                });
            }
        }
        out
    }

    fn repair(&self, data: &Data, v: &Violation, strategy: Strategy) -> Vec<MapOp> {
        match strategy {
            Strategy::Surface => Vec::new(),
            Strategy::Repair(RepairRule::RemoveOrphans) => vec![MapOp::Delete(v.subject.clone())],
            Strategy::Repair(RepairRule::Reparent) => {
                let Some((_, mut c)) = data.get(&v.subject).and_then(|s| comment(s)) else {
                    return Vec::new();
                };
                let lost = LOST_AND_FOUND.trim_start_matches("post/");
                if let Some(o) = c.as_object_mut() {
                    o.insert("post".into(), Value::String(lost.into()));
                }
                vec![
                    MapOp::Set(LOST_AND_FOUND.into(), "Lost and found".into()),
                    MapOp::Set(v.subject.clone(), c.to_string()),
                ]
            }
            Strategy::Recreate => {
                // The orphan of this parent with the smallest key provides the copy, so
                // every replica recreates the same title.
                let source = self
                    .check(data)
                    .into_iter()
                    .filter(|o| o.needs == v.needs)
                    .map(|o| o.subject)
                    .min();
                let title = source
                    .and_then(|s| data.get(&s).and_then(|c| comment(c)))
                    .and_then(|(_, c)| c.get("postTitle").and_then(Value::as_str).map(String::from))
                    .unwrap_or_else(|| "(recreated)".into());
                vec![MapOp::Set(v.needs.clone(), title)]
            }
        }
    }
}

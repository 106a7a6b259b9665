//! Scenario steps of the application level (spec §12.14, CONF-96..CONF-110):
//! lifecycle records and the trash (`trash`, `restore`), the test invariant
//! and its compensations (`afterMerge`), the chapter-13 observation
//! (`expectApp`), map deletes (`unset`), and document replicas bound to a space
//! replica (`spaceDocument`), whose writes are checked against its membership.

use serde_json::Value;

use super::{Run, ScenarioError, fail, names, seed_of, str_of};
use crate::pb::{self, request::Command, response::Result as R};

fn compensation(name: &str) -> Result<pb::Compensation, ScenarioError> {
    Ok(match name {
        "removeOrphans" => pb::Compensation::RemoveOrphans,
        "reparent" => pb::Compensation::Reparent,
        "recreate" => pb::Compensation::Recreate,
        "surface" => pb::Compensation::Surface,
        other => return Err(fail(format!("unknown compensation {other}"))),
    })
}

/// `[["comment/c2", "post/p1"], ...]` as (subject, needs) pairs.
fn pairs(step: &Value, key: &str) -> Result<Option<Vec<(String, String)>>, ScenarioError> {
    let Some(v) = step.get(key) else {
        return Ok(None);
    };
    let arr = v
        .as_array()
        .ok_or_else(|| fail(format!("`{key}` is a list of [subject, needs]")))?;
    arr.iter()
        .map(|p| match p.as_array().map(Vec::as_slice) {
            Some([Value::String(a), Value::String(b)]) => Ok((a.clone(), b.clone())),
            _ => Err(fail(format!("`{key}` is a list of [subject, needs]"))),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The (subject, needs) pairs of reported violations, which must be the test
/// invariant's and sorted (CONF-99).
fn reported(who: &str, vs: &[pb::Violation]) -> Result<Vec<(String, String)>, ScenarioError> {
    let mut out = Vec::new();
    for v in vs {
        if v.invariant != "comments-need-post" {
            return Err(fail(format!(
                "{who}: violation of unknown invariant {:?} (CONF-99)",
                v.invariant
            )));
        }
        out.push((v.subject.clone(), v.needs.clone()));
    }
    let mut sorted = out.clone();
    sorted.sort();
    if sorted != out {
        return Err(fail(format!("{who}: violations are not sorted (CONF-99)")));
    }
    Ok(out)
}

impl Run<'_, '_> {
    /// `<device:NAME>` in a data key becomes the lowercase hex of the signing
    /// key of document replica NAME (APP-1's `_lifecycle/<device>`).
    pub(super) fn expand(&self, text: &str) -> Result<String, ScenarioError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("<device:") {
            out.push_str(&rest[..i]);
            let after = &rest[i + "<device:".len()..];
            let end = after
                .find('>')
                .ok_or_else(|| fail(format!("unterminated <device:...> in {text:?}")))?;
            let name = &after[..end];
            let key = self
                .device_keys
                .get(name)
                .ok_or_else(|| fail(format!("<device:{name}>: no such replica")))?;
            out.push_str(&hex::encode(key));
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn observe_app(&mut self, name: &str) -> Result<pb::AppObservation, ScenarioError> {
        let (a, replica) = self.handle(name)?;
        match self.call_on(a, Command::ObserveApp(pb::ObserveApp { replica }))? {
            R::AppObservation(o) => Ok(o),
            _ => Err(fail("observe_app answered with another result")),
        }
    }

    /// Handles the application-level steps; `false` if `op` is not one.
    pub(super) fn app_step(&mut self, op: &str, step: &Value) -> Result<bool, ScenarioError> {
        match op {
            "unset" => {
                let name = str_of(step, "replica")?.to_string();
                let (a, replica) = self.handle(&name)?;
                let key = self.expand(str_of(step, "key")?)?;
                self.call_on(
                    a,
                    Command::LocalEdit(pb::LocalEdit {
                        replica,
                        edit: Some(pb::local_edit::Edit::MapDelete(pb::MapDelete { key })),
                    }),
                )?;
                self.dirty.insert(name);
            }
            "trash" | "restore" => {
                let name = str_of(step, "replica")?.to_string();
                let (a, replica) = self.handle(&name)?;
                let action = if op == "trash" {
                    pb::LifecycleAction::Trash
                } else {
                    pb::LifecycleAction::Restore
                };
                let id = match self.call_on(
                    a,
                    Command::AppLifecycle(pb::AppLifecycle {
                        replica,
                        action: action as i32,
                    }),
                )? {
                    R::Commit(c) => c.envelope_id,
                    _ => return Err(fail("app_lifecycle answered with another result")),
                };
                if id.is_empty() {
                    return Err(fail(format!(
                        "{}: {op} sealed no lifecycle record (APP-1)",
                        self.host(&name)
                    )));
                }
                self.take_sent(&name, Some(id))?;
            }
            "afterMerge" => {
                let name = str_of(step, "replica")?.to_string();
                let (a, replica) = self.handle(&name)?;
                let c = compensation(str_of(step, "compensation")?)?;
                let res = match self.call_on(
                    a,
                    Command::AppAfterMerge(pb::AppAfterMerge {
                        replica,
                        compensation: c as i32,
                    }),
                )? {
                    R::AppAfterMerge(r) => r,
                    _ => return Err(fail("app_after_merge answered with another result")),
                };
                let who = self.host(&name);
                let repaired = reported(&who, &res.repaired)?;
                let conflicts = reported(&who, &res.conflicts)?;
                if let Some(want) = pairs(step, "repaired")?
                    && want != repaired
                {
                    return Err(fail(format!(
                        "{who}: repaired {repaired:?}, expected {want:?} (APP-6)"
                    )));
                }
                if let Some(want) = pairs(step, "conflicts")?
                    && want != conflicts
                {
                    return Err(fail(format!(
                        "{who}: surfaced {conflicts:?}, expected {want:?} (APP-8)"
                    )));
                }
                if let Some(want) = step.get("writes").and_then(Value::as_u64)
                    && want != u64::from(res.writes)
                {
                    return Err(fail(format!(
                        "{who}: made {} writes, expected {want} (APP-7: the same single-key writes on every replica, none that change nothing)",
                        res.writes
                    )));
                }
                // The writes, if any, were committed as one envelope.
                self.take_sent(&name, None)?;
            }
            "expectApp" => {
                for name in names(step, "replicas")? {
                    let o = self.observe_app(&name)?;
                    let who = self.host(&name);
                    if let Some(want) = step.get("state").and_then(Value::as_str) {
                        let got = match pb::LifecycleState::try_from(o.state) {
                            Ok(pb::LifecycleState::Active) => "active",
                            Ok(pb::LifecycleState::Trashed) => "trashed",
                            _ => {
                                return Err(fail(format!(
                                    "{who}: invalid lifecycle state {} (CONF-98)",
                                    o.state
                                )));
                            }
                        };
                        if got != want {
                            return Err(fail(format!(
                                "{who}: document is {got}, expected {want} (APP-2)"
                            )));
                        }
                    }
                    if step.get("trashedBy").is_some() {
                        let mut want: Vec<Vec<u8>> = Vec::new();
                        for n in names(step, "trashedBy")? {
                            let key = self
                                .device_keys
                                .get(&n)
                                .ok_or_else(|| fail(format!("trashedBy: no replica {n}")))?;
                            want.push(key.to_vec());
                        }
                        want.sort();
                        if want != o.trashed_by {
                            let hexes = |v: &[Vec<u8>]| -> Vec<String> {
                                v.iter().map(hex::encode).collect()
                            };
                            return Err(fail(format!(
                                "{who}: trashed by {:?}, expected {:?} (APP-2)",
                                hexes(&o.trashed_by),
                                hexes(&want)
                            )));
                        }
                    }
                    if let Some(want) = pairs(step, "violations")? {
                        let got = reported(&who, &o.violations)?;
                        if got != want {
                            return Err(fail(format!(
                                "{who}: violations {got:?}, expected {want:?} (APP-6)"
                            )));
                        }
                    }
                }
            }
            "spaceDocument" => {
                // A document replica bound to space replica `space` (CONF-104),
                // on the implementation that hosts it.
                let name = str_of(step, "as")?.to_string();
                let (a, space) = self.space(str_of(step, "space")?)?;
                let doc = str_of(step, "doc")?;
                let crdt = str_of(step, "crdt")?.to_string();
                let cmd = Command::CreateSpaceDocument(pb::CreateSpaceDocument {
                    space,
                    doc_id: seed_of("doc", doc, self.seed),
                    crdt,
                    rng_seed: seed_of("docrng", &name, self.seed),
                });
                match self.call_on(a, cmd)? {
                    R::Replica(h) if h.replica != 0 => {
                        self.handles.insert(name, (a, h.replica));
                    }
                    _ => {
                        return Err(fail("create_space_document must answer a non-zero handle"));
                    }
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

//! Test guest `keeper`: ledgers whose state remembers which build of the plugin folded it.
//!
//! Every `Added` event carries `seen_build`, the build that folded the state the command was
//! decided on (`""` for a new ledger), and `count`, the events that state had seen. A host that
//! handed one build's kept state or snapshot to another build would store the other build's name;
//! one that lost or doubled an event would store a wrong count. Built twice: `1.0.0` (build
//! `v1`) and, with the `next` feature, `2.0.0` (build `v2`).

use cairn_sdk::{Aggregate, CommandSpec, IdSource, Rejection};
use serde::{Deserialize, Serialize};

/// This build's name, written into every state it folds.
#[cfg(not(feature = "next"))]
pub const BUILD: &str = "v1";
/// This build's name, written into every state it folds.
#[cfg(feature = "next")]
pub const BUILD: &str = "v2";

cairn_sdk::export_domain! {
    name: "keeper",
    version: if cfg!(feature = "next") { "2.0.0" } else { "1.0.0" },
    description: "Ledgers that remember which build folded them.",
    aggregates: [Ledger],
}

/// Commands.
#[derive(Deserialize)]
#[serde(tag = "command", content = "payload", rename_all = "kebab-case")]
pub enum LedgerCommand {
    /// Adds `amount` (negative: takes); refused when the total would go below zero.
    Add {
        /// The ledger.
        ledger_id: String,
        /// Non-zero.
        amount: i64,
        /// The caller's reference, stored in the event.
        #[serde(default)]
        reference: String,
    },
    /// Changes nothing; refused unless the total is at least `at_least`.
    Check {
        /// The ledger.
        ledger_id: String,
        /// The total expected.
        at_least: i64,
    },
}

/// Events.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq, Clone)]
#[serde(tag = "type", content = "data")]
pub enum LedgerEvent {
    /// An amount was added.
    Added {
        /// The amount.
        amount: i64,
        /// The caller's reference.
        reference: String,
        /// The build that folded the state this was decided on.
        seen_build: String,
        /// The events that state had seen, plus one.
        count: u64,
    },
}

/// State.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq, Clone)]
pub struct Ledger {
    /// Events folded.
    pub count: u64,
    /// Sum of the amounts.
    pub total: i64,
    /// The build that folded the last event.
    pub build: String,
}

impl Aggregate for Ledger {
    const NAME: &'static str = "ledger";
    const COMMANDS: &'static [CommandSpec] = &[
        CommandSpec::new("add", IdSource::Field("ledger_id"), "Adds to a ledger."),
        CommandSpec::new("check", IdSource::Field("ledger_id"), "Checks a ledger's total."),
    ];
    const EVENT_TYPES: &'static [&'static str] = &["Added"];
    type Command = LedgerCommand;
    type Event = LedgerEvent;

    fn apply(&mut self, event: LedgerEvent) {
        match event {
            LedgerEvent::Added { amount, .. } => {
                self.count += 1;
                self.total += amount;
                self.build = BUILD.to_string();
            }
        }
    }

    fn decide(&self, _id: &str, command: LedgerCommand) -> Result<Vec<LedgerEvent>, Rejection> {
        match command {
            LedgerCommand::Add { amount, reference, .. } => {
                if amount == 0 {
                    return Err(Rejection::new("zero-amount", "The amount must not be zero"));
                }
                if self.total + amount < 0 {
                    return Err(Rejection::new("overdrawn", format!("The total is {}", self.total)));
                }
                Ok(vec![LedgerEvent::Added {
                    amount,
                    reference,
                    seen_build: self.build.clone(),
                    count: self.count + 1,
                }])
            }
            LedgerCommand::Check { at_least, .. } if self.total >= at_least => Ok(vec![]),
            LedgerCommand::Check { .. } => Err(Rejection::new("below", format!("The total is {}", self.total))),
        }
    }
}

#[cfg(test)]
mod tests {
    use cairn_sdk::dispatch::{self, RecordedEvent, StateRequest};

    use super::*;

    fn recorded(version: u64, amount: i64) -> RecordedEvent {
        let event = LedgerEvent::Added { amount, reference: String::new(), seen_build: String::new(), count: version };
        let encoded = dispatch::encode_event(&event).unwrap();
        RecordedEvent {
            stream: "ledger-l".into(),
            version,
            event_type: encoded.event_type,
            data: encoded.data,
            ..RecordedEvent::default()
        }
    }

    #[test]
    fn a_state_plus_its_tail_folds_like_the_whole_history() {
        let history: Vec<RecordedEvent> = (1..=7).map(|v| recorded(v, v as i64 * 10)).collect();
        let whole = dispatch::fold_to_json::<Ledger>(history.clone()).unwrap();
        for cut in 0..=history.len() {
            let head = dispatch::fold_on_state::<Ledger>(None, &history[..cut]).unwrap();
            let again = dispatch::fold_on_state::<Ledger>(Some(&head), &history[cut..]).unwrap();
            assert_eq!(again, whole, "cut at {cut}");
        }
    }

    #[test]
    fn a_decision_on_a_state_returns_the_state_after_its_events() {
        let state = dispatch::fold_on_state::<Ledger>(None, &[recorded(1, 5)]).unwrap();
        let request = StateRequest {
            aggregate: "ledger".into(),
            aggregate_id: "l".into(),
            command: "add".into(),
            payload: r#"{"ledger_id":"l","amount":3,"reference":"r"}"#.into(),
            state: Some(state),
            tail: vec![recorded(2, 2)],
        };
        let decision = dispatch::decide_on_state::<Ledger>(request).unwrap();
        assert_eq!(decision.events.len(), 1);
        let after: Ledger = serde_json::from_str(&decision.state).unwrap();
        assert_eq!(after, Ledger { count: 3, total: 10, build: BUILD.into() });
        assert!(decision.events[0].data.contains(&format!("\"seen_build\":\"{BUILD}\"")));
    }
}

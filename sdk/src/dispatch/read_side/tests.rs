//! The read side's dispatch through a small domain exported with the macro, as the component
//! would run it: events filtered and decoded, failures located, parameters checked.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::*;
use crate::testing;
use crate::{Aggregate, CommandSpec, Find, MemoryReadModel, ProjectError, Rejection, params};

#[derive(Deserialize)]
#[serde(tag = "command", content = "payload", rename_all = "kebab-case")]
pub enum TallyCommand {
    Add {},
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(tag = "type", content = "data")]
pub enum TallyEvent {
    Added { by: i64 },
    Reset {},
}

#[derive(Default, Serialize, Deserialize)]
pub struct Tally;

impl Aggregate for Tally {
    const NAME: &'static str = "tally";
    const COMMANDS: &'static [CommandSpec] = &[];
    const EVENT_TYPES: &'static [&'static str] = &["Added", "Reset"];
    type Command = TallyCommand;
    type Event = TallyEvent;
    fn apply(&mut self, _: TallyEvent) {}
    fn decide(&self, _: &str, _: TallyCommand) -> Result<Vec<TallyEvent>, Rejection> {
        Ok(vec![])
    }
}

/// Sums `Added` per tally; fails on a negative amount. Reads only `Added`.
#[derive(Default)]
pub struct Sums;

impl Projector for Sums {
    const NAME: &'static str = "sums";
    const VERSION: u32 = 3;
    const DESCRIPTION: &'static str = "Sum per tally.";
    const EVENT_TYPES: &'static [&'static str] = &["Added"];
    type Event = TallyEvent;
    fn project(&self, event: &Recorded<TallyEvent>, model: &mut dyn ReadModel) -> Result<(), ProjectError> {
        let id = event.aggregate_id("tally").ok_or_else(|| ProjectError::new("not a tally stream"))?;
        if let TallyEvent::Added { by } = event.event {
            if by < 0 {
                return Err(ProjectError::new("negative"));
            }
            model.increment("sums", id, "sum", by as f64)?;
            model.increment("sums", id, "at", 0.0)?;
            let mut doc = model.get("sums", id)?.unwrap_or_default();
            doc["at"] = json!(event.recorded_at_micros);
            doc["meta"] = event.metadata.clone();
            model.upsert("sums", id, &doc)?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
pub struct SumParams {
    tally: String,
    #[serde(default, deserialize_with = "params::optional_number")]
    at_least: Option<i64>,
}

/// One tally's sum.
#[derive(Default)]
pub struct Sum;

impl Query for Sum {
    const NAME: &'static str = "sum";
    const PROJECTION: &'static str = "sums";
    const DESCRIPTION: &'static str = "One tally's sum.";
    type Params = SumParams;
    fn run(&self, params: SumParams, model: &dyn ReadModelRead) -> Result<Value, QueryError> {
        let find = Find::new().gte("sum", params.at_least.unwrap_or(i64::MIN));
        let ids: Vec<String> = model.find("sums", &find)?.documents.into_iter().map(|d| d.id).collect();
        if !ids.contains(&params.tally) {
            return Err(QueryError::NotFound(format!("no tally `{}`", params.tally)));
        }
        Ok(model.get("sums", &params.tally)?.unwrap_or_default())
    }
}

mod with_read_side {
    use super::*;
    crate::export_domain! {
        name: "tallies",
        description: "Tallies.",
        aggregates: [Tally],
        projectors: [Sums],
        queries: [Sum],
    }
}

mod without_read_side {
    use super::*;
    crate::export_domain! { name: "bare", description: "Nothing to read.", aggregates: [Tally] }
}

use with_read_side::Domain;

fn added(stream: &str, position: u64, by: i64) -> RecordedEvent {
    RecordedEvent {
        stream: stream.into(),
        version: position,
        global_position: position,
        event_type: "Added".into(),
        data: json!({ "by": by }).to_string(),
        metadata: r#"{"plugin_version":"1.0.0"}"#.into(),
        recorded_at_micros: 1_000 + position as i64,
    }
}

#[test]
fn the_macro_describes_projections_and_queries() {
    const { assert!(Domain::HAS_PROJECTORS && Domain::HAS_QUERIES) };
    const { assert!(!without_read_side::Domain::HAS_PROJECTORS && !without_read_side::Domain::HAS_QUERIES) };
    assert!(without_read_side::Domain::projections().is_empty() && without_read_side::Domain::queries().is_empty());
    assert_eq!(
        Domain::projections(),
        [ProjectionInfo {
            name: "sums".into(),
            version: 3,
            description: "Sum per tally.".into(),
            event_types: vec!["Added".into()],
        }]
    );
    assert_eq!(
        Domain::queries(),
        [QueryInfo { name: "sum".into(), projection: "sums".into(), description: "One tally's sum.".into() }]
    );
}

#[test]
fn projecting_skips_unread_types_and_decodes_the_rest() {
    let mut model = MemoryReadModel::new();
    let reset = RecordedEvent { event_type: "Reset".into(), data: "{}".into(), ..added("tally-a", 2, 0) };
    let unknown = RecordedEvent { event_type: "Renamed".into(), data: "not json".into(), ..added("tally-a", 3, 0) };
    let events = vec![added("tally-a", 1, 2), reset, unknown, added("tally-a", 4, 5), added("tally-b", 5, 1)];
    Domain::project("sums", events, &mut model).unwrap();
    assert_eq!(
        model.documents("sums"),
        [
            ("a".to_string(), json!({"sum": 7, "at": 1_004, "meta": {"plugin_version": "1.0.0"}})),
            ("b".to_string(), json!({"sum": 1, "at": 1_005, "meta": {"plugin_version": "1.0.0"}})),
        ]
    );
}

#[test]
fn a_failure_reports_the_failing_events_position() {
    let mut model = MemoryReadModel::new();
    let failure = Domain::project("sums", vec![added("tally-a", 7, 1), added("tally-a", 8, -1)], &mut model)
        .expect_err("a negative amount fails");
    assert_eq!(failure.position, Some(8));
    assert!(failure.message.contains("negative") && failure.message.contains("`sums`"), "{}", failure.message);

    let bad = RecordedEvent { data: r#"{"by": "x"}"#.into(), ..added("tally-a", 9, 0) };
    let failure = Domain::project("sums", vec![bad], &mut model).expect_err("bad data fails");
    assert_eq!(failure.position, Some(9));
    assert!(failure.message.contains("does not decode"), "{}", failure.message);

    let failure = Domain::project("nope", vec![added("tally-a", 1, 1)], &mut model).expect_err("unknown");
    assert_eq!(failure.position, None);
}

#[test]
fn the_test_kit_writes_nothing_of_a_failed_call() {
    let scenario = testing::project::<Sums>()
        .given_on("tally-a", [TallyEvent::Added { by: 1 }])
        .then_document("sums", "a", json!({"sum": 1, "at": testing::START_MICROS, "meta": {"plugin_version": "test"}}))
        .given([TallyEvent::Added { by: 2 }, TallyEvent::Added { by: -1 }])
        .given([TallyEvent::Added { by: 100 }]);
    assert_eq!(scenario.result().as_ref().expect_err("failed").position, Some(3));
    let failure = scenario.then_failed();
    assert!(failure.message.contains("negative"));
}

#[test]
fn the_test_kit_keeps_versions_per_stream_and_times_per_event() {
    let model = testing::project::<Sums>()
        .given_on("tally-a", [TallyEvent::Added { by: 1 }])
        .given_raw("Reset", json!({}))
        .at(5_000)
        .given_on("tally-b", [TallyEvent::Added { by: 2 }, TallyEvent::Added { by: 3 }])
        .then_count("sums", 2)
        .model();
    assert_eq!(model.get("sums", "b").unwrap().unwrap()["at"], json!(5_000 + testing::TICK_MICROS));
}

#[test]
fn queries_run_through_json_text() {
    let mut model = MemoryReadModel::new();
    Domain::project("sums", vec![added("tally-a", 1, 2), added("tally-b", 2, 9)], &mut model).unwrap();
    let answer = Domain::run_query("sum", r#"{"tally": "b", "at_least": "5"}"#, &model).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&answer).unwrap()["sum"], json!(9));
    let answer = testing::query::<Sum>(&model, &[("tally", "a"), ("at_least", "")]).unwrap();
    assert_eq!(answer["sum"], json!(2));
    let answer = testing::query::<Sum>(&model, &[("tally", "a"), ("at_least", "5")]);
    assert_eq!(answer, Err(QueryError::NotFound("no tally `a`".into())));
    let answer = Domain::run_query("nope", "{}", &model);
    assert!(matches!(answer, Err(QueryRunError::UnknownQuery(_))));
}

#[test]
fn bad_parameters_name_the_field() {
    let model = MemoryReadModel::new();
    let field = |result: Result<Value, QueryError>| match result {
        Err(QueryError::InvalidParameters(r)) => {
            assert_eq!(r.code, "invalid-parameters");
            r.fields.into_iter().map(|f| f.field).collect::<Vec<_>>()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(field(testing::query::<Sum>(&model, &[])), ["tally"]);
    assert_eq!(field(testing::query::<Sum>(&model, &[("tally", "a"), ("at_least", "many")])), ["at_least"]);
    let not_object = Domain::run_query("sum", "[1]", &model);
    assert!(matches!(not_object, Err(QueryRunError::InvalidParameters(_))));
}

//! # cairn-sdk: write Cairn domain plugins in plain Rust
//!
//! A Cairn domain is a set of **aggregates**: types that fold their stream's past events into a
//! state ([`Aggregate::apply`]) and decide what a command means for that state
//! ([`Aggregate::decide`]). The host owns every side effect: it loads the history, calls your
//! decision once per command, and appends the events you return atomically.
//!
//! ```
//! use cairn_sdk::{Aggregate, CommandSpec, IdSource, Rejection};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! #[serde(tag = "command", content = "payload", rename_all = "kebab-case")]
//! pub enum CounterCommand { Increment { by: u32 } }
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! #[serde(tag = "type", content = "data")]
//! pub enum CounterEvent { Incremented { by: u32 } }
//!
//! #[derive(Default, Serialize)]
//! pub struct Counter { total: u64 }
//!
//! impl Aggregate for Counter {
//!     const NAME: &'static str = "counter";
//!     const COMMANDS: &'static [CommandSpec] =
//!         &[CommandSpec::new("increment", IdSource::Field("counter_id"), "Adds to a counter")];
//!     const EVENT_TYPES: &'static [&'static str] = &["Incremented"];
//!     type Command = CounterCommand;
//!     type Event = CounterEvent;
//!
//!     fn apply(&mut self, event: CounterEvent) {
//!         match event { CounterEvent::Incremented { by } => self.total += u64::from(by) }
//!     }
//!     fn decide(&self, _id: &str, command: CounterCommand) -> Result<Vec<CounterEvent>, Rejection> {
//!         match command { CounterCommand::Increment { by } => Ok(vec![CounterEvent::Incremented { by }]) }
//!     }
//! }
//!
//! cairn_sdk::export_domain! { name: "counters", description: "Counts things.", aggregates: [Counter] }
//! ```
//!
//! The serde attributes are the contract: commands are an enum **adjacently tagged** with
//! `command`/`payload` and kebab-case names (the name is the URL segment clients post to), events
//! are an enum adjacently tagged with `type`/`data` (the variant name is the stored event type).
//!
//! Build the crate as a `cdylib` for `wasm32-wasip2` and you have a component the host loads.
//! Test it natively with [`testing::given`]: no wasm, no host.

pub mod dispatch;
pub mod log;
mod rejection;
pub mod testing;
mod unit_of_work;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod wasm;

pub use rejection::{FieldError, Rejection, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;
pub use unit_of_work::{EventStoreBackend, Expected, HandlerError, StoreError, UnitOfWork};

/// An aggregate: a consistency boundary whose state is the fold of its own stream.
///
/// `Default` is the state before the first event. `Serialize` lets the host inspect a folded
/// state (for example when it replays streams through a new plugin version).
pub trait Aggregate: Default + Serialize {
    /// The aggregate type, kebab-case (`carrier`). Its streams are named `<NAME>-<id>`.
    const NAME: &'static str;
    /// The commands this aggregate decides.
    const COMMANDS: &'static [CommandSpec];
    /// Every event type [`Aggregate::Event`] serializes to.
    const EVENT_TYPES: &'static [&'static str];
    /// Tolerant reader: when true, folding skips event types missing from
    /// [`Aggregate::EVENT_TYPES`] (written by a later version of the plugin), so rolling back to
    /// this version keeps every stream readable. When false (the default) such an event is an
    /// error, and the host refuses to activate a version that cannot fold existing streams.
    const IGNORE_UNKNOWN_EVENTS: bool = false;
    /// The command enum, `#[serde(tag = "command", content = "payload", rename_all = "kebab-case")]`.
    type Command: DeserializeOwned;
    /// The event enum, `#[serde(tag = "type", content = "data")]`.
    type Event: Serialize + DeserializeOwned;

    /// Evolves the state by one past event. Must not fail: an event is a fact.
    fn apply(&mut self, event: Self::Event);

    /// Decides what `command` means for the aggregate `id` in its current state: the new events,
    /// or a [`Rejection`] that says why not.
    fn decide(&self, id: &str, command: Self::Command) -> Result<Vec<Self::Event>, Rejection>;
}

/// Describes one command for the host's router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// The command's name, kebab-case, as in the command enum's serde tag.
    pub name: &'static str,
    /// Where the host finds the (primary) aggregate id.
    pub id: IdSource,
    /// One sentence for the API's documentation.
    pub description: &'static str,
    /// For a handler's command: its primary aggregate (an aggregate's own commands leave it
    /// `None`: the aggregate is the one that lists them).
    pub handled_for: Option<&'static str>,
}

impl CommandSpec {
    /// An aggregate's command named `name` whose aggregate id comes from `id`.
    pub const fn new(name: &'static str, id: IdSource, description: &'static str) -> Self {
        Self { name, id, description, handled_for: None }
    }

    /// A command handler's command; `aggregate` is its primary aggregate (the stream the HTTP
    /// answer reports first, `<aggregate>-<id>`).
    pub const fn handled(name: &'static str, aggregate: &'static str, id: IdSource, description: &'static str) -> Self {
        Self { name, id, description, handled_for: Some(aggregate) }
    }
}

/// A command handler: a unit of work over several streams of the domain. It reads and appends
/// through a [`UnitOfWork`] (usually by running aggregates' own rules with
/// [`UnitOfWork::execute`]); the host commits everything it appended atomically when `handle`
/// returns `Ok`, nothing otherwise, and runs it again on a version conflict.
pub trait CommandHandler: Default {
    /// The commands it handles (built with [`CommandSpec::handled`]).
    const COMMANDS: &'static [CommandSpec];
    /// The command enum, `#[serde(tag = "command", content = "payload", rename_all = "kebab-case")]`.
    type Command: DeserializeOwned;

    /// Runs `command`; `id` is the primary aggregate's id.
    fn handle(&self, work: &mut UnitOfWork<'_>, id: &str, command: Self::Command) -> Result<(), HandlerError>;
}

/// How the host finds the aggregate id of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSource {
    /// A top-level field of the command payload (a string or a number).
    Field(&'static str),
    /// The host mints a fresh UUIDv7: the command creates a new aggregate.
    Minted,
}

/// A domain's description, as the `describe` export reports it. Built by [`export_domain!`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainInfo {
    /// The domain's name, kebab-case.
    pub name: String,
    /// The plugin's semantic version.
    pub version: String,
    /// One paragraph for operators.
    pub description: String,
    /// Aggregate type names.
    pub aggregates: Vec<String>,
    /// Every command with its aggregate.
    pub commands: Vec<(String, CommandSpec)>,
    /// Every event type.
    pub event_types: Vec<String>,
    /// Extra capabilities asked for.
    pub capabilities: Vec<String>,
}

/// Exports a domain made of aggregates as a Cairn component.
///
/// ```text
/// cairn_sdk::export_domain! {
///     name: "carriers",
///     description: "Registers carriers and keeps their contact details.",
///     aggregates: [Carrier],
/// }
/// ```
///
/// It defines `pub struct Domain` (usable natively: [`dispatch::DomainPlugin`]) and, when built
/// for wasm32, the component's `describe`, `decide` and `fold` exports. The version is the
/// crate's `CARGO_PKG_VERSION` unless a `version: "x.y.z",` line follows the name. A trailing
/// `capabilities: ["scratch"]` asks the host for capabilities beyond the role's (today:
/// `scratch`, a per-domain directory mounted at `/scratch`).
#[macro_export]
macro_rules! export_domain {
    (
        name: $name:literal,
        $(version: $version:expr,)?
        description: $description:literal,
        aggregates: [$($agg:ty),+ $(,)?]
        $(, handlers: [$($handler:ty),* $(,)?])?
        $(, capabilities: [$($capability:literal),* $(,)?])?
        $(,)?
    ) => {
        /// This crate's Cairn domain, as the host sees it.
        pub struct Domain;

        impl $crate::dispatch::DomainPlugin for Domain {
            fn info() -> $crate::DomainInfo {
                let mut aggregates = ::std::vec::Vec::new();
                let mut commands = ::std::vec::Vec::new();
                let mut event_types = ::std::vec::Vec::new();
                $(
                    aggregates.push(<$agg as $crate::Aggregate>::NAME.to_string());
                    for spec in <$agg as $crate::Aggregate>::COMMANDS {
                        commands.push((<$agg as $crate::Aggregate>::NAME.to_string(), *spec));
                    }
                    for ty in <$agg as $crate::Aggregate>::EVENT_TYPES {
                        event_types.push(ty.to_string());
                    }
                )+
                $($(
                    for spec in <$handler as $crate::CommandHandler>::COMMANDS {
                        commands.push((spec.handled_for.unwrap_or_default().to_string(), *spec));
                    }
                )*)?
                $crate::DomainInfo {
                    name: $name.to_string(),
                    version: {
                        let version: &str = env!("CARGO_PKG_VERSION");
                        $(let version: &str = $version;)?
                        version.to_string()
                    },
                    description: $description.to_string(),
                    aggregates,
                    commands,
                    event_types,
                    capabilities: ::std::vec![$($($capability.to_string()),*)?],
                }
            }

            fn decide(request: $crate::dispatch::DecideRequest) -> ::std::result::Result<::std::vec::Vec<$crate::dispatch::NewEvent>, $crate::dispatch::DecideError> {
                $(
                    if request.aggregate == <$agg as $crate::Aggregate>::NAME {
                        return $crate::dispatch::decide::<$agg>(request);
                    }
                )+
                Err($crate::dispatch::DecideError::UnknownCommand(format!("no aggregate `{}` in this domain", request.aggregate)))
            }

            fn fold(aggregate: &str, history: ::std::vec::Vec<$crate::dispatch::RecordedEvent>) -> ::std::result::Result<::std::string::String, $crate::dispatch::DecideError> {
                $(
                    if aggregate == <$agg as $crate::Aggregate>::NAME {
                        return $crate::dispatch::fold_to_json::<$agg>(history);
                    }
                )+
                Err($crate::dispatch::DecideError::UnknownCommand(format!("no aggregate `{aggregate}` in this domain")))
            }
        }

        impl $crate::dispatch::DomainHandlers for Domain {
            $crate::__handle_fn!($([$($handler),*])?);
        }

        #[cfg(target_arch = "wasm32")]
        $crate::__export_wasm!(Domain);
    };
}

/// The `handle` dispatch of [`export_domain!`]: a domain without handlers never touches the
/// event store (so its component does not import it).
#[macro_export]
#[doc(hidden)]
macro_rules! __handle_fn {
    () => {
        fn handle(
            request: $crate::dispatch::HandleRequest,
            _backend: &mut dyn $crate::EventStoreBackend,
        ) -> ::std::result::Result<(), $crate::dispatch::HandleError> {
            Err($crate::dispatch::HandleError::UnknownCommand(format!("no handler for `{}`", request.command)))
        }
        const HAS_HANDLERS: bool = false;
    };
    ([$($handler:ty),*]) => {
        fn handle(
            request: $crate::dispatch::HandleRequest,
            backend: &mut dyn $crate::EventStoreBackend,
        ) -> ::std::result::Result<(), $crate::dispatch::HandleError> {
            $(
                if <$handler as $crate::CommandHandler>::COMMANDS.iter().any(|c| c.name == request.command) {
                    return $crate::dispatch::handle::<$handler>(request, backend);
                }
            )*
            Err($crate::dispatch::HandleError::UnknownCommand(format!("no handler for `{}`", request.command)))
        }
        const HAS_HANDLERS: bool = true;
    };
}

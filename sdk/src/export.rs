//! [`crate::export_domain!`]: the one macro a domain crate calls. It lists the domain's
//! aggregates, handlers, projectors and queries, implements the dispatch traits for `Domain`, and
//! on wasm32 wires them to the component's exports.

/// Exports a domain as a Cairn component.
///
/// ```text
/// cairn_sdk::export_domain! {
///     name: "orders",
///     version: "0.2.0",                             // optional
///     description: "Takes orders and keeps per-user statistics.",
///     aggregates: [Order],
///     handlers: [Checkout],                         // optional: command handlers
///     projectors: [OrdersProjection, UserStats],    // optional: read-model projectors
///     queries: [OrdersByUser, UserDashboard],       // optional: queries over them
///     capabilities: ["scratch"],                    // optional
/// }
/// ```
///
/// The sections come in this order. It defines `pub struct Domain` (usable natively through
/// [`crate::dispatch::DomainPlugin`], [`crate::dispatch::DomainHandlers`] and
/// [`crate::dispatch::DomainReadSide`]) and, when built for wasm32, the component's exports. A
/// domain without handlers never touches the event store, and one without projectors and
/// queries never touches the read model, so its component imports neither. The version is the
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
        $(, projectors: [$($projector:ty),* $(,)?])?
        $(, queries: [$($query:ty),* $(,)?])?
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

            fn decide_on_state(request: $crate::dispatch::StateRequest) -> ::std::result::Result<$crate::dispatch::Decision, $crate::dispatch::DecideError> {
                $(
                    if request.aggregate == <$agg as $crate::Aggregate>::NAME {
                        return $crate::dispatch::decide_on_state::<$agg>(request);
                    }
                )+
                Err($crate::dispatch::DecideError::UnknownCommand(format!("no aggregate `{}` in this domain", request.aggregate)))
            }

            fn fold_on_state(aggregate: &str, state: ::std::option::Option<&str>, tail: ::std::vec::Vec<$crate::dispatch::RecordedEvent>) -> ::std::result::Result<::std::string::String, $crate::dispatch::DecideError> {
                $(
                    if aggregate == <$agg as $crate::Aggregate>::NAME {
                        return $crate::dispatch::fold_on_state::<$agg>(state, &tail);
                    }
                )+
                Err($crate::dispatch::DecideError::UnknownCommand(format!("no aggregate `{aggregate}` in this domain")))
            }
        }

        impl $crate::dispatch::DomainHandlers for Domain {
            $crate::__handle_fn!($([$($handler),*])?);
        }

        $crate::__read_side!(Domain, [$($($projector),*)?], [$($($query),*)?]);

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

/// The read side of [`export_domain!`]: `DomainReadSide` for `$domain` over its projectors and
/// queries. With none of either, `project` and `run` answer without touching the read model.
#[macro_export]
#[doc(hidden)]
macro_rules! __read_side {
    ($domain:ident, [$($projector:ty),*], [$($query:ty),*]) => {
        impl $crate::dispatch::DomainReadSide for $domain {
            const HAS_PROJECTORS: bool = <[&str]>::len(&[$(<$projector as $crate::Projector>::NAME),*]) > 0;
            const HAS_QUERIES: bool = <[&str]>::len(&[$(<$query as $crate::Query>::NAME),*]) > 0;

            fn projections() -> ::std::vec::Vec<$crate::dispatch::ProjectionInfo> {
                ::std::vec![$($crate::dispatch::projection_info::<$projector>()),*]
            }

            fn project(
                projection: &str,
                events: ::std::vec::Vec<$crate::dispatch::RecordedEvent>,
                model: &mut dyn $crate::ReadModel,
            ) -> ::std::result::Result<(), $crate::dispatch::ProjectFailure> {
                let _ = (&events, &model);
                $(
                    if projection == <$projector as $crate::Projector>::NAME {
                        return $crate::dispatch::project::<$projector>(events, model);
                    }
                )*
                Err($crate::dispatch::ProjectFailure {
                    position: None,
                    message: format!("no projection `{projection}` in this domain"),
                })
            }

            fn queries() -> ::std::vec::Vec<$crate::dispatch::QueryInfo> {
                ::std::vec![$($crate::dispatch::query_info::<$query>()),*]
            }

            fn run_query(
                query: &str,
                parameters: &str,
                model: &dyn $crate::ReadModelRead,
            ) -> ::std::result::Result<::std::string::String, $crate::dispatch::QueryRunError> {
                let _ = (&parameters, &model);
                $(
                    if query == <$query as $crate::Query>::NAME {
                        return $crate::dispatch::run_query::<$query>(parameters, model).map_err(Into::into);
                    }
                )*
                Err($crate::dispatch::QueryRunError::UnknownQuery(format!("no query `{query}` in this domain")))
            }
        }
    };
}

//! The action table: each action declared once, as a constant, giving both its manifest entry and
//! its dispatch (see [`Actions`]).

use crate::plugin::{Ctx, Error};
use crate::wire::{ActionSpec, ParamSpec, ParamType, Section};

/// The function that runs one action: reads what it needs from the [`Ctx`] and records effects on
/// it, or says why not.
pub type Handler = fn(&mut Ctx) -> Result<(), Error>;

/// A plugin's actions, each declared once: [`Actions::specs`] gives the manifest's
/// [`ActionSpec`]s, [`Actions::call`] runs the one a call names. Build it as a constant, usually
/// [`crate::Plugin::ACTIONS`], so it costs nothing at run time.
///
/// ```
/// use cauldron_sdk::prelude::*;
///
/// fn greet(ctx: &mut Ctx) -> Result<(), Error> {
///     ctx.reply("hello")
/// }
///
/// const ACTIONS: Actions = Actions::new(&[
///     Action::new("greet", greet).title("Greet").query(),
/// ]);
///
/// let specs = ACTIONS.specs();
/// assert_eq!(specs[0].name, "greet");
/// assert!(specs[0].query);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Actions {
    list: &'static [Action],
}

impl Actions {
    /// A table of `actions`, in the order the manifest lists them. Names must be unique (the
    /// host refuses a manifest that declares one twice; `Manifest::validate` says so in tests).
    pub const fn new(actions: &'static [Action]) -> Self {
        Self { list: actions }
    }

    /// A table without actions (a plugin that only offers hooks).
    pub const NONE: Self = Self::new(&[]);

    /// The manifest entries, one per action, in order.
    pub fn specs(&self) -> Vec<ActionSpec> {
        self.list.iter().map(Action::spec).collect()
    }

    /// The action named `name`.
    pub fn get(&self, name: &str) -> Option<&'static Action> {
        self.list.iter().find(|a| a.name == name)
    }

    /// Every action, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'static Action> + use<> {
        self.list.iter()
    }

    /// Run the action the call names (`ctx.action()`); a name not in the table is the standard
    /// `unknown_action` rejection ([`Error::unknown_action`]).
    pub fn call(&self, ctx: &mut Ctx) -> Result<(), Error> {
        match self.get(ctx.action()) {
            Some(action) => (action.handler)(ctx),
            None => Err(Error::unknown_action(ctx.action())),
        }
    }
}

/// One action: its name, the function that runs it, and what the manifest says of it.
///
/// [`Action::new`] starts with the defaults of an empty [`ActionSpec`]: no title or description,
/// no params, reads no state sections, no extra entity kinds, no content tables, not a query,
/// reads no other player. Each builder method sets one field; all are `const`.
#[derive(Debug, Clone, Copy)]
pub struct Action {
    name: &'static str,
    handler: Handler,
    title: &'static str,
    description: &'static str,
    params: &'static [Param],
    reads: &'static [Section],
    kinds: &'static [&'static str],
    content: &'static [&'static str],
    query: bool,
    reads_player: &'static str,
}

impl Action {
    /// The action `name` (lowercase letters, digits, `_` and `-`), run by `handler`.
    pub const fn new(name: &'static str, handler: Handler) -> Self {
        Self {
            name,
            handler,
            title: "",
            description: "",
            params: &[],
            reads: &[],
            kinds: &[],
            content: &[],
            query: false,
            reads_player: "",
        }
    }

    /// The display title ([`ActionSpec::title`]).
    pub const fn title(mut self, title: &'static str) -> Self {
        self.title = title;
        self
    }

    /// The help text ([`ActionSpec::description`]).
    pub const fn description(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }

    /// The parameters ([`ActionSpec::params`]).
    pub const fn params(mut self, params: &'static [Param]) -> Self {
        self.params = params;
        self
    }

    /// The state sections the call carries ([`ActionSpec::reads`]); only these are sent.
    pub const fn reads(mut self, sections: &'static [Section]) -> Self {
        self.reads = sections;
        self
    }

    /// Entity kinds of other plugins it reads and may change ([`ActionSpec::kinds`]).
    pub const fn kinds(mut self, kinds: &'static [&'static str]) -> Self {
        self.kinds = kinds;
        self
    }

    /// The content tables it needs ([`ActionSpec::content`]); the host checks they exist at load.
    pub const fn content(mut self, tables: &'static [&'static str]) -> Self {
        self.content = tables;
        self
    }

    /// Make it a read-only query ([`ActionSpec::query`]): it must record no effects.
    pub const fn query(mut self) -> Self {
        self.query = true;
        self
    }

    /// Read the other player named by the `param` parameter, which must be one of its params of
    /// type [`ParamType::Player`] ([`ActionSpec::reads_player`]).
    pub const fn reads_player(mut self, param: &'static str) -> Self {
        self.reads_player = param;
        self
    }

    /// The action's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The function that runs it.
    pub const fn handler(&self) -> Handler {
        self.handler
    }

    /// Its manifest entry.
    pub fn spec(&self) -> ActionSpec {
        ActionSpec {
            name: self.name.into(),
            title: self.title.into(),
            description: self.description.into(),
            params: self.params.iter().map(Param::spec).collect(),
            reads: self.reads.to_vec(),
            kinds: strings(self.kinds),
            content: strings(self.content),
            query: self.query,
            reads_player: self.reads_player.into(),
        }
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// One parameter of an [`Action`], as a constant; [`Param::spec`] gives its [`ParamSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    name: &'static str,
    ty: ParamType,
    required: bool,
    of: &'static str,
    description: &'static str,
}

impl Param {
    /// A parameter the client must give.
    pub const fn required(name: &'static str, ty: ParamType) -> Self {
        Self {
            name,
            ty,
            required: true,
            of: "",
            description: "",
        }
    }

    /// A parameter the client may leave out.
    pub const fn optional(name: &'static str, ty: ParamType) -> Self {
        Self {
            required: false,
            ..Self::required(name, ty)
        }
    }

    /// For [`ParamType::Entity`]: the entity kind; for [`ParamType::String`]: the allowed values,
    /// comma-separated ([`ParamSpec::of`]).
    pub const fn of(mut self, of: &'static str) -> Self {
        self.of = of;
        self
    }

    /// The help text ([`ParamSpec::description`]).
    pub const fn description(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }

    /// Its manifest entry.
    pub fn spec(&self) -> ParamSpec {
        ParamSpec {
            name: self.name.into(),
            ty: self.ty,
            required: self.required,
            of: self.of.into(),
            description: self.description.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Doc;
    use crate::abi::reject_codes;
    use crate::wire::{Call, CallKind, PlayerState};

    fn ok(_: &mut Ctx) -> Result<(), Error> {
        Ok(())
    }

    fn answer(ctx: &mut Ctx) -> Result<(), Error> {
        ctx.reply(&42)
    }

    fn call(action: &str) -> Ctx {
        Ctx::new(blank(action))
    }

    fn blank(action: &str) -> Call {
        Call {
            kind: CallKind::Action,
            action: action.into(),
            params: Doc::nil(),
            player: PlayerState::default(),
            effective_stats: Default::default(),
            other_player: None,
            content: Default::default(),
            seed: 1,
            now_ms: 0,
        }
    }

    #[test]
    fn a_bare_action_has_the_defaults_of_an_empty_spec() {
        let spec = Action::new("wave", ok).spec();
        assert_eq!(
            spec,
            ActionSpec {
                name: "wave".into(),
                title: String::new(),
                description: String::new(),
                params: vec![],
                reads: vec![],
                kinds: vec![],
                content: vec![],
                query: false,
                reads_player: String::new(),
            }
        );
        // The same defaults a manifest gets when it leaves the optional fields out.
        let decoded: ActionSpec = Doc::encode(&std::collections::BTreeMap::from([("name", "wave")]))
            .and_then(|d| d.decode())
            .expect("a name alone decodes");
        assert_eq!(spec, decoded);
    }

    #[test]
    fn every_builder_sets_its_field() {
        const ACTIONS: Actions = Actions::new(&[Action::new("duel", ok)
            .title("Duel")
            .description("Fight someone.")
            .params(&[
                Param::required("opponent", ParamType::Player).description("Who"),
                Param::optional("style", ParamType::String).of("calm,wild"),
            ])
            .reads(&[Section::Stats, Section::Entities])
            .kinds(&["pet"])
            .content(&["duel"])
            .query()
            .reads_player("opponent")]);
        assert_eq!(
            ACTIONS.specs(),
            vec![ActionSpec {
                name: "duel".into(),
                title: "Duel".into(),
                description: "Fight someone.".into(),
                params: vec![
                    ParamSpec {
                        name: "opponent".into(),
                        ty: ParamType::Player,
                        required: true,
                        of: String::new(),
                        description: "Who".into(),
                    },
                    ParamSpec {
                        name: "style".into(),
                        ty: ParamType::String,
                        required: false,
                        of: "calm,wild".into(),
                        description: String::new(),
                    },
                ],
                reads: vec![Section::Stats, Section::Entities],
                kinds: vec!["pet".into()],
                content: vec!["duel".into()],
                query: true,
                reads_player: "opponent".into(),
            }]
        );
    }

    #[test]
    fn specs_keep_the_declared_order() {
        const ACTIONS: Actions =
            Actions::new(&[Action::new("b", ok), Action::new("a", ok), Action::new("c", ok)]);
        let names: Vec<String> = ACTIONS.specs().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["b", "a", "c"]);
        assert_eq!(
            ACTIONS.iter().map(Action::name).collect::<Vec<_>>(),
            ["b", "a", "c"]
        );
        assert!(Actions::NONE.specs().is_empty());
    }

    #[test]
    fn a_call_runs_the_named_action_and_an_unknown_name_is_rejected() {
        const ACTIONS: Actions = Actions::new(&[Action::new("wave", ok), Action::new("answer", answer)]);

        let mut ctx = call("answer");
        ACTIONS.call(&mut ctx).expect("a declared action runs");
        let (_, reply) = ctx.finish();
        assert_eq!(reply.decode::<i64>().expect("an integer reply"), 42);

        let mut ctx = call("dance");
        let err = ACTIONS.call(&mut ctx).expect_err("an undeclared action");
        assert_eq!(err.code(), reject_codes::UNKNOWN_ACTION);
        assert_eq!(err, Error::unknown_action("dance"));
    }

    struct Waver;

    impl crate::Plugin for Waver {
        const ACTIONS: Actions = Actions::new(&[
            Action::new("wave", ok).reads(&[Section::State]),
            Action::new("answer", answer).query(),
        ]);

        fn manifest() -> crate::wire::Manifest {
            crate::wire::Manifest {
                name: "waver".into(),
                version: "1.0.0".into(),
                abi: crate::abi::ABI_VERSION,
                title: String::new(),
                description: String::new(),
                entity_kinds: vec![],
                actions: Self::ACTIONS.specs(),
                hooks: vec![],
            }
        }
    }

    fn run(action: &str) -> crate::wire::Outcome {
        let input = crate::codec::encode(&blank(action)).expect("a call encodes");
        crate::codec::decode(&crate::export::handle_bytes_with::<Waver>(&input, None)).expect("an outcome")
    }

    #[test]
    fn a_plugin_with_a_table_describes_and_dispatches_through_it() {
        let manifest: crate::wire::Manifest =
            crate::codec::decode(&crate::export::describe_bytes::<Waver>()).expect("a manifest");
        manifest.validate().expect("a valid manifest");
        assert_eq!(manifest.actions, <Waver as crate::Plugin>::ACTIONS.specs());

        match run("answer") {
            crate::wire::Outcome::Ok { reply, .. } => {
                assert_eq!(reply.decode::<i64>().expect("an integer"), 42)
            }
            other => panic!("`answer` runs: {other:?}"),
        }
        assert_eq!(
            run("dance"),
            crate::wire::Outcome::Rejected {
                code: reject_codes::UNKNOWN_ACTION.into(),
                message: "unknown action `dance`".into(),
            }
        );
    }
}

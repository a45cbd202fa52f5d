//! `/api/v1/catalog`: every loaded plugin's manifest and content, so clients render actions, names and
//! odds without hard-coding them.

use std::collections::BTreeMap;

use axum::extract::State;
use cauldron_sdk::wire::{ActionSpec, HookSpec, Manifest, ParamSpec, ParamType, Section};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::game::{CatalogEntry, Game};
use crate::state::AppState;

/// The catalog route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(catalog))
}

/// A section of player state an action or hook reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Section)]
pub enum SectionView {
    /// Stats before modifiers.
    Stats,
    /// Currency balances.
    Currencies,
    /// Counters.
    Counters,
    /// Item stacks.
    Items,
    /// Entities of the kinds the action lists.
    Entities,
    /// Active buffs.
    Buffs,
    /// The plugin's private state.
    State,
}

impl From<Section> for SectionView {
    fn from(s: Section) -> Self {
        match s {
            Section::Stats => Self::Stats,
            Section::Currencies => Self::Currencies,
            Section::Counters => Self::Counters,
            Section::Items => Self::Items,
            Section::Entities => Self::Entities,
            Section::Buffs => Self::Buffs,
            Section::State => Self::State,
        }
    }
}

/// The type of one action parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ParamType)]
pub enum ParamTypeView {
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// Text.
    String,
    /// true or false.
    Bool,
    /// The id of one of the player's entities.
    Entity,
    /// The id of another player (a whole number); only the param the action's `reads_player` names.
    Player,
}

impl From<ParamType> for ParamTypeView {
    fn from(t: ParamType) -> Self {
        match t {
            ParamType::Integer => Self::Integer,
            ParamType::Number => Self::Number,
            ParamType::String => Self::String,
            ParamType::Bool => Self::Bool,
            ParamType::Entity => Self::Entity,
            ParamType::Player => Self::Player,
        }
    }
}

/// One parameter of an action.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = ParamSpec)]
pub struct ParamSpecView {
    /// Key in the params object.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: ParamTypeView,
    /// Whether it must be present.
    pub required: bool,
    /// For `entity` params the entity kind; for `string` params the allowed values, comma-separated
    /// (empty: any).
    pub of: String,
    /// Help text.
    pub description: String,
}

impl From<ParamSpec> for ParamSpecView {
    fn from(p: ParamSpec) -> Self {
        Self {
            name: p.name,
            ty: p.ty.into(),
            required: p.required,
            of: p.of,
            description: p.description,
        }
    }
}

/// An action a plugin offers, run with `POST /api/v1/actions/{plugin}/{action}`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = ActionSpec)]
pub struct ActionSpecView {
    /// Name, unique in the plugin.
    pub name: String,
    /// Display title.
    pub title: String,
    /// Help text.
    pub description: String,
    /// Parameters.
    pub params: Vec<ParamSpecView>,
    /// State sections it reads.
    pub reads: Vec<SectionView>,
    /// Entity kinds it reads and may change, beyond the plugin's own.
    pub kinds: Vec<String>,
    /// Content tables it needs.
    pub content: Vec<String>,
    /// A read-only action: it writes nothing (no log row, no new version).
    pub query: bool,
    /// The `player` param naming another player whose public view the action reads (empty: none).
    pub reads_player: String,
}

impl From<ActionSpec> for ActionSpecView {
    fn from(a: ActionSpec) -> Self {
        Self {
            name: a.name,
            title: a.title,
            description: a.description,
            params: a.params.into_iter().map(ParamSpecView::from).collect(),
            reads: a.reads.into_iter().map(SectionView::from).collect(),
            kinds: a.kinds,
            content: a.content,
            query: a.query,
            reads_player: a.reads_player,
        }
    }
}

/// A hook a plugin implements.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = HookSpec)]
pub struct HookSpecView {
    /// Hook name (`modifiers`).
    pub name: String,
    /// State sections it reads.
    pub reads: Vec<SectionView>,
    /// Content tables it needs.
    pub content: Vec<String>,
}

impl From<HookSpec> for HookSpecView {
    fn from(h: HookSpec) -> Self {
        Self {
            name: h.name,
            reads: h.reads.into_iter().map(SectionView::from).collect(),
            content: h.content,
        }
    }
}

/// What a plugin declares about itself.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Manifest)]
pub struct ManifestView {
    /// Plugin name: lowercase letters, digits, `_` and `-`.
    pub name: String,
    /// Semantic version, `MAJOR.MINOR.PATCH`.
    pub version: String,
    /// ABI major version.
    pub abi: u32,
    /// Display title.
    pub title: String,
    /// What the plugin adds to the game.
    pub description: String,
    /// Entity kinds this plugin owns and may create.
    pub entity_kinds: Vec<String>,
    /// Its actions.
    pub actions: Vec<ActionSpecView>,
    /// Its hooks.
    pub hooks: Vec<HookSpecView>,
}

impl From<Manifest> for ManifestView {
    fn from(m: Manifest) -> Self {
        Self {
            name: m.name,
            version: m.version,
            abi: m.abi,
            title: m.title,
            description: m.description,
            entity_kinds: m.entity_kinds,
            actions: m.actions.into_iter().map(ActionSpecView::from).collect(),
            hooks: m.hooks.into_iter().map(HookSpecView::from).collect(),
        }
    }
}

/// One loaded plugin.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = CatalogEntry)]
pub struct CatalogEntryView {
    /// Its manifest.
    pub manifest: ManifestView,
    /// The version serving.
    pub version: String,
    /// What identifies the serving version: the hex sha256 of its bundle (module and content tables).
    #[schema(min_length = 64, max_length = 64, pattern = "^[0-9a-f]+$")]
    pub sha256: String,
    /// Content tables by name, as JSON.
    pub content: BTreeMap<String, serde_json::Value>,
}

impl From<CatalogEntry> for CatalogEntryView {
    fn from(e: CatalogEntry) -> Self {
        Self {
            manifest: e.manifest.into(),
            version: e.version,
            sha256: e.sha256,
            content: e.content,
        }
    }
}

/// Every loaded plugin.
#[utoipa::path(
    get, path = "/catalog", tag = "catalog",
    operation_id = "getCatalog",
    responses((status = 200, description = "Loaded plugins", body = Vec<CatalogEntryView>, links(
        ("action" = (operation_id = "runAction", description = "Run the first plugin's first action",
            parameters(("plugin" = "$response.body#/0/manifest/name"), ("action" = "$response.body#/0/manifest/actions/0/name")))),
    )))
)]
async fn catalog(State(game): State<Game>) -> axum::Json<Vec<CatalogEntryView>> {
    axum::Json(game.catalog().into_iter().map(CatalogEntryView::from).collect())
}

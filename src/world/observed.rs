//! An object as observed, kept lean: the JSON text that was recorded, the few fields the fold,
//! the world's indexes and the planner read without a tree (identity, labels, the fencing
//! annotations, the status's `lastAction`, generations and ready replicas), and the whole tree
//! only when someone asks for it ([`Observed::object`]), parsed once and then shared.
//!
//! The fields are read by one lenient deserializer ([`Head`]) that skips everything else
//! (`IgnoredAny`, which still checks that the text is JSON), from text as well as from a tree
//! (`&Value` is a deserializer too), so both paths read the same facts. It is lenient the way
//! `Value::get` and `Value::as_str` are: a field of another type than expected reads as absent,
//! a field given twice as its last value.

use crate::model::{ACTION_ID_ANNOTATION, MANAGED_BY, MANAGER, PLAN_SEQ_ANNOTATION};
use crate::record::{Json, ObjKey};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;
use std::sync::{Arc, OnceLock};

/// An object as observed: its identity, version and content (managedFields dropped).
///
/// The content is the JSON text as recorded (canonical: compact, keys sorted, as
/// [`Json::from_value`] writes it) and a tree parsed from it on first use.
#[derive(Clone)]
pub struct Observed {
    /// `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// `metadata.uid` (empty when unknown, e.g. objects read from a file).
    pub uid: String,
    /// `metadata.resourceVersion` (empty when unknown).
    pub resource_version: String,
    text: Json,
    facts: Facts,
    tree: OnceLock<Arc<Value>>,
}

/// Why recorded text is not an observed object.
#[derive(Debug)]
pub enum Unreadable {
    /// The text is not JSON.
    NotJson(serde_json::Error),
    /// It is JSON, without the identity of an object (message).
    NoIdentity(String),
}

impl Observed {
    /// Reads identity and version out of a JSON object (dropping its managedFields).
    pub fn from_value(object: Value) -> Result<(ObjKey, Observed), String> {
        let object = strip_managed_fields(object);
        let head = Head::of_value(&object);
        let key = head.key()?;
        let text = Json::from_value(&object);
        Ok((
            key,
            head.into_observed(text, OnceLock::from(Arc::new(object))),
        ))
    }

    /// Reads identity and version out of recorded JSON text, without parsing the rest into a
    /// tree (until [`Observed::object`] is asked for). Text with `metadata.managedFields` is
    /// parsed and written again without them.
    pub fn from_json(text: &Json) -> Result<(ObjKey, Observed), Unreadable> {
        let head = Head::of_text(text.as_str()).map_err(Unreadable::NotJson)?;
        if head.metadata.managed_fields {
            let object = text.parse().map_err(Unreadable::NotJson)?;
            return Observed::from_value(object).map_err(Unreadable::NoIdentity);
        }
        let key = head.key().map_err(Unreadable::NoIdentity)?;
        Ok((key, head.into_observed(text.clone(), OnceLock::new())))
    }

    /// An object with identity and version given apart from its content (which is taken as
    /// it is, managedFields and all).
    pub fn with_identity(
        api_version: &str,
        uid: &str,
        resource_version: &str,
        object: Value,
    ) -> Observed {
        let facts = Head::of_value(&object).facts();
        Observed {
            api_version: api_version.to_string(),
            uid: uid.to_string(),
            resource_version: resource_version.to_string(),
            text: Json::from_value(&object),
            facts,
            tree: OnceLock::from(Arc::new(object)),
        }
    }

    /// [`Observed::with_identity`], from canonical JSON text (a checkpoint's object).
    pub fn with_identity_text(
        api_version: String,
        uid: String,
        resource_version: String,
        text: Json,
    ) -> Result<Observed, serde_json::Error> {
        let facts = Head::of_text(text.as_str())?.facts();
        Ok(Observed {
            api_version,
            uid,
            resource_version,
            text,
            facts,
            tree: OnceLock::new(),
        })
    }

    /// The whole object as JSON, parsed from its text on first use.
    pub fn object(&self) -> &Value {
        self.tree.get_or_init(|| {
            // The text was read as JSON when this was made, so it parses; were it not to,
            // the object would read as null rather than take the process down.
            Arc::new(self.text.parse().unwrap_or(Value::Null))
        })
    }

    /// The whole object as its canonical JSON text.
    pub fn text(&self) -> &Json {
        &self.text
    }

    /// The object read as `T`: from the tree when it is parsed already, else straight from
    /// the text (no tree built). Errors are those of reading the tree, whichever way it went.
    pub fn read_as<T: de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        if let Some(tree) = self.tree.get() {
            return T::deserialize(&**tree);
        }
        match self.text.parse_as() {
            Ok(t) => Ok(t),
            // The same message as reading the tree gives (they may say it differently).
            Err(_) => T::deserialize(self.object()),
        }
    }

    /// The value of label `name`, if set (as a string).
    pub fn label(&self, name: &str) -> Option<&str> {
        self.facts
            .labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The fencing token an executor stamped on the object: its plan sequence annotation (when
    /// it is a number) and action id annotation.
    pub fn fencing_token(&self) -> Option<(u64, Option<&str>)> {
        let seq = self.facts.plan_seq_annotation.as_deref()?.parse().ok()?;
        Some((seq, self.facts.action_id_annotation.as_deref()))
    }

    /// The action id annotation (`logbook.dev/action-id`), if a string.
    pub fn action_id_annotation(&self) -> Option<&str> {
        self.facts.action_id_annotation.as_deref()
    }

    /// The fencing token of an Application's status: `status.lastAction`.
    pub fn status_token(&self) -> Option<(u64, Option<&str>)> {
        let seq = self.facts.last_plan_seq?;
        Some((seq, self.facts.last_action_id.as_deref()))
    }

    /// `status.lastAction.actionId`, if a string.
    pub fn last_action_id(&self) -> Option<&str> {
        self.facts.last_action_id.as_deref()
    }

    /// `metadata.generation`, if an integer.
    pub fn generation(&self) -> Option<i64> {
        self.facts.generation
    }

    /// `status.observedGeneration`, if an integer.
    pub fn observed_generation(&self) -> Option<i64> {
        self.facts.observed_generation
    }

    /// `status.readyReplicas`, if an integer.
    pub fn ready_replicas(&self) -> Option<i64> {
        self.facts.ready_replicas
    }

    /// True when the object carries `app.kubernetes.io/managed-by=logbook`.
    pub fn is_managed(&self) -> bool {
        self.label(MANAGED_BY) == Some(MANAGER)
    }
}

impl PartialEq for Observed {
    /// Equal identity, version and content (as trees: the same JSON, however written).
    fn eq(&self, other: &Observed) -> bool {
        self.api_version == other.api_version
            && self.uid == other.uid
            && self.resource_version == other.resource_version
            && (self.text.as_str() == other.text.as_str() || self.object() == other.object())
    }
}

impl fmt::Debug for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observed")
            .field("api_version", &self.api_version)
            .field("uid", &self.uid)
            .field("resource_version", &self.resource_version)
            .field("object", &self.text)
            .finish()
    }
}

/// Removes `metadata.managedFields`, which is bookkeeping of the API server, not state.
pub fn strip_managed_fields(mut object: Value) -> Value {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    object
}

/// What is kept of an object besides its text.
#[derive(Clone, Debug, Default)]
struct Facts {
    /// The string-valued labels, in the order written.
    labels: Vec<(String, String)>,
    plan_seq_annotation: Option<String>,
    action_id_annotation: Option<String>,
    last_plan_seq: Option<u64>,
    last_action_id: Option<String>,
    generation: Option<i64>,
    observed_generation: Option<i64>,
    ready_replicas: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// The lenient reader.

/// The fields read from an object.
#[derive(Default)]
struct Head {
    kind: Option<String>,
    api_version: Option<String>,
    metadata: Meta,
    status: Status,
}

#[derive(Default)]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    labels: Vec<(String, String)>,
    annotations: Annotations,
    managed_fields: bool,
}

#[derive(Default)]
struct Annotations {
    plan_seq: Option<String>,
    action_id: Option<String>,
}

#[derive(Default)]
struct Status {
    ready_replicas: Option<i64>,
    observed_generation: Option<i64>,
    last_action: LastAction,
}

#[derive(Default)]
struct LastAction {
    plan_seq: Option<u64>,
    action_id: Option<String>,
}

impl Head {
    fn of_text(text: &str) -> Result<Head, serde_json::Error> {
        serde_json::from_str::<Lenient<Head>>(text).map(|l| l.0)
    }

    fn of_value(value: &Value) -> Head {
        // Reading a tree leniently cannot fail: every shape reads as something.
        Lenient::<Head>::deserialize(value)
            .map(|l| l.0)
            .unwrap_or_default()
    }

    /// The object's key, or why it has none.
    fn key(&self) -> Result<ObjKey, String> {
        let kind = self.kind.as_deref().unwrap_or_default();
        let api_version = self.api_version.as_deref().unwrap_or_default();
        let name = self.metadata.name.as_deref().unwrap_or_default();
        if kind.is_empty() || api_version.is_empty() {
            return Err("object has no `kind` or `apiVersion`".to_string());
        }
        if name.is_empty() {
            return Err(format!("{kind} has no `metadata.name`"));
        }
        let namespace = self.metadata.namespace.as_deref().unwrap_or_default();
        Ok(ObjKey::new(kind, namespace, name))
    }

    fn facts(self) -> Facts {
        let Head {
            metadata, status, ..
        } = self;
        Facts {
            labels: metadata.labels,
            plan_seq_annotation: metadata.annotations.plan_seq,
            action_id_annotation: metadata.annotations.action_id,
            last_plan_seq: status.last_action.plan_seq,
            last_action_id: status.last_action.action_id,
            generation: metadata.generation,
            observed_generation: status.observed_generation,
            ready_replicas: status.ready_replicas,
        }
    }

    fn into_observed(mut self, text: Json, tree: OnceLock<Arc<Value>>) -> Observed {
        let api_version = self.api_version.take().unwrap_or_default();
        let uid = self.metadata.uid.take().unwrap_or_default();
        let resource_version = self.metadata.resource_version.take().unwrap_or_default();
        Observed {
            api_version,
            uid,
            resource_version,
            text,
            facts: self.facts(),
            tree,
        }
    }
}

/// A JSON object read field by field; the position of each wanted name in `NAMES`.
trait Fields: Default {
    const NAMES: &'static [&'static str];
    fn field<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error>;
}

impl Fields for Head {
    const NAMES: &'static [&'static str] = &["kind", "apiVersion", "metadata", "status"];
    fn field<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.kind = map.next_value::<Str>()?.0,
            1 => self.api_version = map.next_value::<Str>()?.0,
            2 => self.metadata = map.next_value::<Lenient<Meta>>()?.0,
            _ => self.status = map.next_value::<Lenient<Status>>()?.0,
        }
        Ok(())
    }
}

impl Fields for Meta {
    const NAMES: &'static [&'static str] = &[
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "labels",
        "annotations",
        "managedFields",
    ];
    fn field<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.name = map.next_value::<Str>()?.0,
            1 => self.namespace = map.next_value::<Str>()?.0,
            2 => self.uid = map.next_value::<Str>()?.0,
            3 => self.resource_version = map.next_value::<Str>()?.0,
            4 => self.generation = map.next_value::<Int>()?.0,
            5 => self.labels = map.next_value::<Labels>()?.0,
            6 => self.annotations = map.next_value::<Lenient<Annotations>>()?.0,
            _ => {
                map.next_value::<IgnoredAny>()?;
                self.managed_fields = true;
            }
        }
        Ok(())
    }
}

impl Fields for Annotations {
    const NAMES: &'static [&'static str] = &[PLAN_SEQ_ANNOTATION, ACTION_ID_ANNOTATION];
    fn field<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.plan_seq = map.next_value::<Str>()?.0,
            _ => self.action_id = map.next_value::<Str>()?.0,
        }
        Ok(())
    }
}

impl Fields for Status {
    const NAMES: &'static [&'static str] = &["readyReplicas", "observedGeneration", "lastAction"];
    fn field<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.ready_replicas = map.next_value::<Int>()?.0,
            1 => self.observed_generation = map.next_value::<Int>()?.0,
            _ => self.last_action = map.next_value::<Lenient<LastAction>>()?.0,
        }
        Ok(())
    }
}

impl Fields for LastAction {
    const NAMES: &'static [&'static str] = &["planSeq", "actionId"];
    fn field<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.plan_seq = map.next_value::<U64>()?.0,
            _ => self.action_id = map.next_value::<Str>()?.0,
        }
        Ok(())
    }
}

/// Drains a JSON array.
fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Drains a JSON object.
fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Implements the visits of every JSON shape but those named, as "absent" (the default).
macro_rules! absent_otherwise {
    (str) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (num) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
    (map) => {
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            drain_map(map)?;
            Ok(Default::default())
        }
    };
    (common) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            drain_seq(seq)?;
            Ok(Default::default())
        }
    };
}

/// A JSON object's wanted fields, or the default for any other JSON value.
#[derive(Default)]
struct Lenient<T>(T);

impl<'de, T: Fields> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Fields> Visitor<'de> for V<T> {
            type Value = Lenient<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<T>, A::Error> {
                let mut out = T::default();
                while let Some(Name(index)) = map.next_key_seed(Names(T::NAMES))? {
                    match index {
                        Some(i) => out.field(i, &mut map)?,
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Lenient(out))
            }
            absent_otherwise!(str);
            absent_otherwise!(num);
            absent_otherwise!(common);
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A key of a JSON object: its position among the wanted names, if wanted.
struct Name(Option<usize>);

/// Reads a key as a [`Name`], without allocating.
struct Names(&'static [&'static str]);

impl<'de> de::DeserializeSeed<'de> for Names {
    type Value = Name;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Name, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Names {
    type Value = Name;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Name, E> {
        Ok(Name(self.0.iter().position(|n| *n == v)))
    }
}

/// A string, or absent for any other JSON value.
#[derive(Default)]
struct Str(Option<String>);

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str, E> {
                Ok(Str(Some(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str, E> {
                Ok(Str(Some(v)))
            }
            absent_otherwise!(num);
            absent_otherwise!(map);
            absent_otherwise!(common);
        }
        d.deserialize_any(V)
    }
}

/// An integer that fits an `i64` (as `Value::as_i64` reads it), or absent.
#[derive(Default)]
struct Int(Option<i64>);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(Some(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                Ok(Int(i64::try_from(v).ok()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Int, E> {
                Ok(Int(None))
            }
            absent_otherwise!(str);
            absent_otherwise!(map);
            absent_otherwise!(common);
        }
        d.deserialize_any(V)
    }
}

/// A non-negative integer that fits a `u64` (as `Value::as_u64` reads it), or absent.
#[derive(Default)]
struct U64(Option<u64>);

impl<'de> Deserialize<'de> for U64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = U64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<U64, E> {
                Ok(U64(u64::try_from(v).ok()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<U64, E> {
                Ok(U64(Some(v)))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<U64, E> {
                Ok(U64(None))
            }
            absent_otherwise!(str);
            absent_otherwise!(map);
            absent_otherwise!(common);
        }
        d.deserialize_any(V)
    }
}

/// The string-valued entries of a JSON object (the last of a repeated key), or none.
#[derive(Default)]
struct Labels(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Labels;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Labels, A::Error> {
                let mut out: Vec<(String, String)> = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    let v = map.next_value::<Str>()?.0;
                    out.retain(|(x, _)| *x != k);
                    if let Some(v) = v {
                        out.push((k, v));
                    }
                }
                Ok(Labels(out))
            }
            absent_otherwise!(str);
            absent_otherwise!(num);
            absent_otherwise!(common);
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::INSTANCE_LABEL;
    use serde_json::json;

    /// The instance label, the fencing token, the status token, and generation, observed
    /// generation and ready replicas.
    type Read = (
        Option<String>,
        Option<(u64, Option<String>)>,
        Option<(u64, Option<String>)>,
        [Option<i64>; 3],
    );

    /// What the old tree-reading accessors gave, to compare the lean ones with.
    fn by_tree(o: &Value) -> Read {
        let label = o
            .pointer("/metadata/labels")
            .and_then(|l| l.get(INSTANCE_LABEL))
            .and_then(Value::as_str)
            .map(str::to_string);
        let fencing = (|| {
            let a = o.get("metadata")?.get("annotations")?;
            let seq = a.get(PLAN_SEQ_ANNOTATION)?.as_str()?.parse().ok()?;
            Some((
                seq,
                a.get(ACTION_ID_ANNOTATION)
                    .and_then(Value::as_str)
                    .map(str::to_string),
            ))
        })();
        let status = (|| {
            let last = o.get("status")?.get("lastAction")?;
            let seq = last.get("planSeq")?.as_u64()?;
            Some((
                seq,
                last.get("actionId")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            ))
        })();
        let int = |p: &str| o.pointer(p).and_then(Value::as_i64);
        (
            label,
            fencing,
            status,
            [
                int("/metadata/generation"),
                int("/status/observedGeneration"),
                int("/status/readyReplicas"),
            ],
        )
    }

    fn lean(o: &Observed) -> Read {
        (
            o.label(INSTANCE_LABEL).map(str::to_string),
            o.fencing_token().map(|(s, id)| (s, id.map(str::to_string))),
            o.status_token().map(|(s, id)| (s, id.map(str::to_string))),
            [o.generation(), o.observed_generation(), o.ready_replicas()],
        )
    }

    #[test]
    fn the_lean_fields_are_what_the_tree_says_whatever_their_shape() {
        let objects = [
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "shop", "uid": "u", "resourceVersion": "7",
                    "generation": 3,
                    "labels": {INSTANCE_LABEL: "web", MANAGED_BY: MANAGER, "n": 5},
                    "annotations": {PLAN_SEQ_ANNOTATION: "12", ACTION_ID_ANNOTATION: "act-1", "x": {}}},
                "spec": {"replicas": 2, "template": {"metadata": {"labels": {INSTANCE_LABEL: "no"}}}},
                "status": {"readyReplicas": 2, "observedGeneration": 3,
                    "lastAction": {"planSeq": 9, "actionId": "act-2"}}}),
            // Other shapes than expected read as absent, as `Value::get` and `as_*` have them.
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "generation": -1, "labels": [1, 2],
                    "annotations": {PLAN_SEQ_ANNOTATION: 12, ACTION_ID_ANNOTATION: "a"}},
                "status": {"readyReplicas": 1.5, "observedGeneration": u64::MAX,
                    "lastAction": {"planSeq": -3, "actionId": 4}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "labels": {INSTANCE_LABEL: null},
                    "annotations": {PLAN_SEQ_ANNOTATION: "not a number"}},
                "status": {"lastAction": {"actionId": "only"}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "annotations": "none"}, "status": [1, {"a": 2}]}),
        ];
        for object in objects {
            let text = Json::from_value(&object);
            let (key, from_text) = Observed::from_json(&text).unwrap_or_else(|e| panic!("{e:?}"));
            let (key2, from_tree) =
                Observed::from_value(object.clone()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(key, key2);
            assert_eq!(lean(&from_text), by_tree(&object), "{object}");
            assert_eq!(lean(&from_tree), by_tree(&object), "{object}");
            assert_eq!(from_text, from_tree);
            assert_eq!(from_text.object(), &object);
            assert_eq!(from_text.text().as_str(), from_tree.text().as_str());
        }
    }

    #[test]
    fn a_repeated_field_reads_as_its_last_value_as_a_tree_has_it() {
        let raw = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"a","labels":{"k":"1"}},"metadata":{"name":"b"}}"#;
        let tree: Value = serde_json::from_str(raw).unwrap_or_default();
        let json: Json =
            serde_json::from_value(Value::String(raw.into())).unwrap_or_else(|e| panic!("{e}"));
        let (key, o) = Observed::from_json(&json).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(key.name, "b");
        assert_eq!(o.label("k"), None);
        assert_eq!(o.object(), &tree);
    }

    #[test]
    fn text_that_is_not_json_or_not_an_object_is_told_apart() {
        let bad: Json = serde_json::from_value(Value::String("{\"kind\": ".into()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            Observed::from_json(&bad),
            Err(Unreadable::NotJson(_))
        ));
        let nameless = Json::from_value(&json!({"apiVersion": "v1", "kind": "Service"}));
        match Observed::from_json(&nameless) {
            Err(Unreadable::NoIdentity(why)) => assert_eq!(why, "Service has no `metadata.name`"),
            other => panic!("{other:?}"),
        }
        let list = Json::from_value(&json!([1, 2]));
        assert!(matches!(
            Observed::from_json(&list),
            Err(Unreadable::NoIdentity(_))
        ));
    }

    #[test]
    fn managed_fields_are_dropped_from_text_as_from_a_tree() {
        let object = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "a", "managedFields": [{"manager": "x"}]}});
        let (_, o) =
            Observed::from_json(&Json::from_value(&object)).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            o.object(),
            &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}})
        );
        assert!(!o.text().as_str().contains("managedFields"));
    }
}

//! A [`Partial`] as a coordinator receives it and a worker builds it: the
//! same bytes on the wire, held in three flat arrays instead of three
//! allocations per group.
//!
//! A partial of 10,000 groups arrives with every chunk of a many-group
//! query. Decoded as [`Partial`], each group costs a key `Vec`, a `ByteBuf`
//! per key part and a `Vec` of states, all allocated on a reader thread and
//! freed on the merge thread; that was a fifth of the coordinator's time on
//! such queries. [`PackedPartial`] decodes the same MessagePack (a
//! [`GroupState`] as a map by field name, or as an array in field order)
//! with the keys encoded back to back in one arena (see [`push_key_part`]), so
//! [`crate::GroupTable::merge_packed`] hashes and compares them in place.
//!
//! A worker builds one group by group ([`PackedPartial::push_group`]) and
//! sends it: its `Serialize` writes the bytes of the [`Partial`] of the
//! same groups, with no `GroupState` made and dropped per group; or, for a
//! coordinator that reads them ([`PackedPartial::set_columns`]), the
//! columns form, [`Columns`]: the same arrays as five byte strings, which
//! take a few copies to write and to read instead of a dozen MessagePack
//! values a group (Q2's partials, 10,000 groups each: about 800
//! instructions a group saved on each side, counted with cachegrind).
//!
//! Why by hand: serde derives allocate per field by design; a borrowed
//! derive cannot append to a shared arena.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::partial::{GroupState, NumState, Partial};

/// Encodes a key into `out` (appending): [`push_key_part`] for each part.
pub(crate) fn encode_key_into(key: &[Option<ByteBuf>], out: &mut Vec<u8>) {
    for part in key {
        push_key_part(out, part.as_ref().map(|b| b.as_slice()));
    }
}

/// Bytes [`push_key_part`] writes before a present part's bytes: the tag
/// and the length. What a partial's key arena needs beyond the key bytes.
pub const KEY_PART_HEADER: usize = 1 + std::mem::size_of::<u64>();

/// Appends one key part to an encoded key, unambiguously: a tag byte (0
/// null, 1 present), then for a present part its length (u64 LE) and
/// bytes ([`KEY_PART_HEADER`] bytes in all before them). The encoding of
/// [`PackedGroup::encoded_key`]; a worker's group table uses it too, for
/// keys of several columns.
pub fn push_key_part(out: &mut Vec<u8>, part: Option<&[u8]>) {
    match part {
        None => out.push(0),
        Some(bytes) => {
            out.push(1);
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(bytes);
        }
    }
}

/// The key parts of an encoded key (see [`push_key_part`]); a malformed
/// encoding (not written by [`push_key_part`]) ends the key where it
/// breaks.
pub fn decode_key(enc: &[u8]) -> Vec<Option<ByteBuf>> {
    key_parts(enc)
        .map(|part| part.map(|bytes| ByteBuf::from(bytes.to_vec())))
        .collect()
}

/// The key parts of an encoded key, borrowed (see [`decode_key`]).
pub fn key_parts(enc: &[u8]) -> KeyParts<'_> {
    KeyParts { rest: enc }
}

/// Iterator over the parts of an encoded key: `None` for a null part.
#[derive(Debug, Clone)]
pub struct KeyParts<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for KeyParts<'a> {
    type Item = Option<&'a [u8]>;

    fn next(&mut self) -> Option<Option<&'a [u8]>> {
        let (&tag, rest) = self.rest.split_first()?;
        if tag == 0 {
            self.rest = rest;
            return Some(None);
        }
        let parsed = rest.split_first_chunk::<8>().and_then(|(len, rest)| {
            let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
            rest.split_at_checked(len)
        });
        match parsed {
            Some((bytes, rest)) => {
                self.rest = rest;
                Some(Some(bytes))
            }
            None => {
                self.rest = &[];
                None
            }
        }
    }
}

/// One group of a [`PackedPartial`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PackedGroup<'a> {
    /// The key, encoded (see the module documentation).
    pub encoded_key: &'a [u8],
    /// Records in the group.
    pub rows: u64,
    /// One state per value column.
    pub values: &'a [NumState],
}

impl PackedGroup<'_> {
    /// The group as a [`GroupState`] (allocates).
    pub fn to_group_state(&self) -> GroupState {
        GroupState {
            key: decode_key(self.encoded_key),
            rows: self.rows,
            values: self.values.to_vec(),
        }
    }
}

/// Where a group's parts end in the arrays of a [`PackedPartial`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ends {
    key: usize,
    values: usize,
    rows: u64,
}

/// A [`Partial`] held in flat arrays; decodes from a `Partial`'s wire form,
/// its groups form or its columns form (see [`PackedPartial::set_columns`]).
#[derive(Debug, Clone, Default)]
pub struct PackedPartial {
    arena: Vec<u8>,
    values: Vec<NumState>,
    ends: Vec<Ends>,
    /// Whether it serializes in the columns form.
    columns: bool,
}

/// Equal groups, whatever form each would be sent in.
impl PartialEq for PackedPartial {
    fn eq(&self, other: &Self) -> bool {
        self.arena == other.arena && self.values == other.values && self.ends == other.ends
    }
}

impl PackedPartial {
    /// An empty partial with room for `groups` groups, `key_bytes` bytes of
    /// encoded keys (see [`push_key_part`]) and `values` value states in
    /// all: a worker knows them before it builds a partial, which then
    /// grows without copying (a partial of a million groups is tens of
    /// MiB; doubling it copied and faulted in each size on the way).
    pub fn with_capacity(groups: usize, key_bytes: usize, values: usize) -> Self {
        let mut partial = PackedPartial::default();
        partial.clear_with_capacity(groups, key_bytes, values);
        partial
    }

    /// Empties the partial, keeping its memory, and makes room as
    /// [`PackedPartial::with_capacity`] does: a worker builds each task's
    /// partial in the memory of the one before.
    pub fn clear_with_capacity(&mut self, groups: usize, key_bytes: usize, values: usize) {
        self.arena.clear();
        self.values.clear();
        self.ends.clear();
        self.arena.reserve(key_bytes);
        self.values.reserve(values);
        self.ends.reserve(groups);
    }

    /// Whether the partial serializes in the columns form (`true`), which
    /// a coordinator announces it reads in its `Hello`, or as groups (the
    /// default, what every coordinator reads). The columns form writes the
    /// whole partial as five byte strings ([`Columns`]): a worker encodes
    /// and a coordinator decodes a partial of 10,000 groups with a few
    /// copies instead of 12 MessagePack values a group.
    pub fn set_columns(&mut self, on: bool) {
        self.columns = on;
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there is no group.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Group `k`, in the order received.
    pub fn group(&self, k: usize) -> Option<PackedGroup<'_>> {
        let end = self.ends.get(k)?;
        let (key_start, values_start) = match k.checked_sub(1) {
            Some(before) => self.ends.get(before).map(|e| (e.key, e.values))?,
            None => (0, 0),
        };
        Some(PackedGroup {
            encoded_key: self.arena.get(key_start..end.key)?,
            rows: end.rows,
            values: self.values.get(values_start..end.values)?,
        })
    }

    /// The groups, in the order received.
    pub fn groups(&self) -> impl Iterator<Item = PackedGroup<'_>> + '_ {
        (0..self.len()).filter_map(|k| self.group(k))
    }

    /// Adds a group: its key parts (`None`: the null key), its row count
    /// and its value states.
    pub fn push_group<'k>(
        &mut self,
        key: impl IntoIterator<Item = Option<&'k [u8]>>,
        rows: u64,
        values: impl IntoIterator<Item = NumState>,
    ) {
        for part in key {
            push_key_part(&mut self.arena, part);
        }
        self.values.extend(values);
        self.close_group(rows);
    }

    /// Adds a group whose key is already encoded (see [`push_key_part`]).
    pub fn push_encoded_group(
        &mut self,
        encoded_key: &[u8],
        rows: u64,
        values: impl IntoIterator<Item = NumState>,
    ) {
        self.arena.extend_from_slice(encoded_key);
        self.values.extend(values);
        self.close_group(rows);
    }

    /// Adds a group whose key was appended to the arena and values to
    /// `values` since the last group.
    fn close_group(&mut self, rows: u64) {
        self.ends.push(Ends {
            key: self.arena.len(),
            values: self.values.len(),
            rows,
        });
    }
}

impl From<&Partial> for PackedPartial {
    fn from(p: &Partial) -> Self {
        let mut packed = PackedPartial::default();
        for g in &p.groups {
            encode_key_into(&g.key, &mut packed.arena);
            packed.values.extend_from_slice(&g.values);
            packed.close_group(g.rows);
        }
        packed
    }
}

impl From<Partial> for PackedPartial {
    fn from(p: Partial) -> Self {
        PackedPartial::from(&p)
    }
}

impl From<&PackedPartial> for Partial {
    fn from(p: &PackedPartial) -> Self {
        Partial {
            groups: p.groups().map(|g| g.to_group_state()).collect(),
        }
    }
}

/// The bytes a [`Partial`] of the same groups serializes to: a worker
/// sends a partial built in flat arrays without a `GroupState` per group.
/// In the columns form (see [`PackedPartial::set_columns`]), `{columns:
/// Columns}` instead.
impl Serialize for PackedPartial {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut partial = s.serialize_struct("Partial", 1)?;
        if self.columns {
            partial.serialize_field("columns", &Columns::of(self))?;
        } else {
            partial.serialize_field("groups", &GroupsOut(self))?;
        }
        partial.end()
    }
}

/// Bytes of one [`NumState`] in [`Columns::states`].
pub const STATE_BYTES: usize = 49;

/// A partial's columns form: its groups as five byte strings, every number
/// little-endian. Group `k`'s key is `keys[key_ends[k-1]..key_ends[k]]`
/// (from 0 for the first group), encoded as [`push_key_part`] writes keys;
/// its states are those from `value_ends[k-1]` to `value_ends[k]` in
/// `states`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Columns {
    /// Per group, where its key ends in `keys` (u64 each).
    #[serde(with = "serde_bytes")]
    pub key_ends: Vec<u8>,
    /// The keys, back to back.
    #[serde(with = "serde_bytes")]
    pub keys: Vec<u8>,
    /// Per group, its records (u64 each).
    #[serde(with = "serde_bytes")]
    pub rows: Vec<u8>,
    /// Per group, where its states end, counted in states (u64 each).
    #[serde(with = "serde_bytes")]
    pub value_ends: Vec<u8>,
    /// The states, [`STATE_BYTES`] each: `count` u64, `sum_scaled` i64,
    /// `scale` u8, then `sum_float`, `min`, `max`, `m2` as f64.
    #[serde(with = "serde_bytes")]
    pub states: Vec<u8>,
}

impl Columns {
    /// The columns of `p`.
    fn of(p: &PackedPartial) -> Columns {
        let words = |f: &dyn Fn(&Ends) -> u64| {
            p.ends
                .iter()
                .flat_map(|e| f(e).to_le_bytes())
                .collect::<Vec<u8>>()
        };
        let mut states = Vec::with_capacity(p.values.len() * STATE_BYTES);
        for v in &p.values {
            states.extend_from_slice(&v.count.to_le_bytes());
            states.extend_from_slice(&v.sum_scaled.to_le_bytes());
            states.push(v.scale);
            for x in [v.sum_float, v.min, v.max, v.m2] {
                states.extend_from_slice(&x.to_le_bytes());
            }
        }
        Columns {
            key_ends: words(&|e| e.key as u64),
            keys: p.arena.clone(),
            rows: words(&|e| e.rows),
            value_ends: words(&|e| e.values as u64),
            states,
        }
    }

    /// The partial these columns hold, appended to `p` (which is empty);
    /// what is wrong with them otherwise: lengths that disagree, ends that
    /// go back or past their data, a key that is not a whole encoded key.
    fn into_partial(self, p: &mut PackedPartial) -> Result<(), String> {
        fn words(bytes: &[u8], what: &str) -> Result<Vec<u64>, String> {
            if bytes.len() % 8 != 0 {
                return Err(format!(
                    "{what}: {} bytes, not a multiple of 8",
                    bytes.len()
                ));
            }
            Ok(bytes
                .chunks_exact(8)
                .map(|w| u64::from_le_bytes(le(w)))
                .collect())
        }
        let key_ends = words(&self.key_ends, "key_ends")?;
        let rows = words(&self.rows, "rows")?;
        let value_ends = words(&self.value_ends, "value_ends")?;
        if key_ends.len() != rows.len() || value_ends.len() != rows.len() {
            return Err(format!(
                "{} rows, {} key ends and {} value ends",
                rows.len(),
                key_ends.len(),
                value_ends.len()
            ));
        }
        let states = self.states.chunks_exact(STATE_BYTES);
        if !states.remainder().is_empty() {
            return Err(format!(
                "states: {} bytes, not a multiple of {STATE_BYTES}",
                self.states.len()
            ));
        }
        let (mut key_at, mut value_at) = (0usize, 0usize);
        for (k, ((&key_end, &value_end), &rows)) in
            key_ends.iter().zip(&value_ends).zip(&rows).enumerate()
        {
            let key_end = usize::try_from(key_end).unwrap_or(usize::MAX);
            let value_end = usize::try_from(value_end).unwrap_or(usize::MAX);
            let key = (key_end >= key_at)
                .then(|| self.keys.get(key_at..key_end))
                .flatten()
                .ok_or_else(|| format!("group {k}: key ends at {key_end}, outside the keys"))?;
            if !whole_key(key) {
                return Err(format!("group {k}: the key is not an encoded key"));
            }
            if value_end < value_at || value_end > states.len() {
                return Err(format!(
                    "group {k}: states end at {value_end}, outside the states"
                ));
            }
            (key_at, value_at) = (key_end, value_end);
            p.ends.push(Ends {
                key: key_end,
                values: value_end,
                rows,
            });
        }
        if key_at != self.keys.len() || value_at != states.len() {
            return Err("bytes after the last group's key or states".into());
        }
        p.values.extend(states.map(|b| {
            let word = |at: usize| le(b.get(at..at + 8).unwrap_or_default());
            NumState {
                count: u64::from_le_bytes(word(0)),
                sum_scaled: i64::from_le_bytes(word(8)),
                scale: b.get(16).copied().unwrap_or_default(),
                sum_float: f64::from_le_bytes(word(17)),
                min: f64::from_le_bytes(word(25)),
                max: f64::from_le_bytes(word(33)),
                m2: f64::from_le_bytes(word(41)),
            }
        }));
        p.arena = self.keys;
        Ok(())
    }
}

/// The first 8 bytes of `b` (zeros where it is shorter), for `from_le_bytes`.
fn le(b: &[u8]) -> [u8; 8] {
    let mut w = [0u8; 8];
    for (w, b) in w.iter_mut().zip(b) {
        *w = *b;
    }
    w
}

/// Whether `enc` is a sequence of whole key parts as [`push_key_part`]
/// writes them.
fn whole_key(mut enc: &[u8]) -> bool {
    while let Some((&tag, rest)) = enc.split_first() {
        enc = match tag {
            0 => rest,
            1 => match rest.split_first_chunk::<8>() {
                Some((len, rest)) => match usize::try_from(u64::from_le_bytes(*len)) {
                    Ok(len) if len <= rest.len() => &rest[len..],
                    _ => return false,
                },
                None => return false,
            },
            _ => return false,
        };
    }
    true
}

/// The groups of a [`PackedPartial`], serialized as `Partial::groups`.
struct GroupsOut<'a>(&'a PackedPartial);

impl Serialize for GroupsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for g in self.0.groups() {
            seq.serialize_element(&GroupOut(g))?;
        }
        seq.end()
    }
}

/// One group, serialized as a [`GroupState`]: `[key, rows, values]`.
struct GroupOut<'a>(PackedGroup<'a>);

impl Serialize for GroupOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&KeyOut(self.0.encoded_key))?;
        t.serialize_element(&self.0.rows)?;
        t.serialize_element(self.0.values)?;
        t.end()
    }
}

/// An encoded key, serialized as `GroupState::key`: a list of byte
/// strings and nils.
struct KeyOut<'a>(&'a [u8]);

impl Serialize for KeyOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(key_parts(self.0).count()))?;
        for part in key_parts(self.0) {
            seq.serialize_element(&part.map(serde_bytes::Bytes::new))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for PackedPartial {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct("Partial", &["groups"], PartialVisitor)
    }
}

/// Field names, as [`Partial`] and [`GroupState`] derive them.
const GROUP_FIELDS: &[&str] = &["key", "rows", "values"];

struct PartialVisitor;

impl<'de> Visitor<'de> for PartialVisitor {
    type Value = PackedPartial;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("struct Partial")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PackedPartial, A::Error> {
        let mut packed = PackedPartial::default();
        seq.next_element_seed(GroupsSeed(&mut packed))?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        Ok(packed)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PackedPartial, A::Error> {
        let mut packed = PackedPartial::default();
        let mut seen = None;
        while let Some(name) = map.next_key::<FieldName>()? {
            let field = match name.0.as_deref() {
                Some(f @ ("groups" | "columns")) => f,
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                    continue;
                }
            };
            if let Some(before) = seen {
                return Err(de::Error::custom(format_args!(
                    "a partial with both `{before}` and `{field}`"
                )));
            }
            if field == "groups" {
                map.next_value_seed(GroupsSeed(&mut packed))?;
                seen = Some("groups");
            } else {
                map.next_value::<Columns>()?
                    .into_partial(&mut packed)
                    .map_err(|e| de::Error::custom(format_args!("partial columns: {e}")))?;
                seen = Some("columns");
            }
        }
        if seen.is_none() {
            return Err(de::Error::missing_field("groups"));
        }
        Ok(packed)
    }
}

/// A struct field's name (a string, or bytes holding one; `None` for a
/// name given as an index, which no encoder of ours writes).
struct FieldName(Option<String>);

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FieldName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldName, E> {
                Ok(FieldName(Some(v.to_string())))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<FieldName, E> {
                Ok(FieldName(std::str::from_utf8(v).ok().map(str::to_string)))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<FieldName, E> {
                Ok(FieldName(None))
            }
        }
        d.deserialize_identifier(V)
    }
}

/// The `groups` array, appended group by group.
struct GroupsSeed<'a>(&'a mut PackedPartial);

impl<'de> DeserializeSeed<'de> for GroupsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for GroupsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of groups")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(GroupSeed(self.0))?.is_some() {}
        Ok(())
    }
}

/// One group, appended to the partial's arrays.
struct GroupSeed<'a>(&'a mut PackedPartial);

impl<'de> DeserializeSeed<'de> for GroupSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_struct("GroupState", GROUP_FIELDS, self)
    }
}

impl<'de> Visitor<'de> for GroupSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("struct GroupState")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let p = self.0;
        let missing = |i| de::Error::invalid_length(i, &"struct GroupState with 3 elements");
        seq.next_element_seed(KeySeed(&mut p.arena))?
            .ok_or_else(|| missing(0))?;
        let rows = seq.next_element::<u64>()?.ok_or_else(|| missing(1))?;
        seq.next_element_seed(ValuesSeed(&mut p.values))?
            .ok_or_else(|| missing(2))?;
        p.close_group(rows);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let p = self.0;
        let (mut key, mut rows, mut values) = (false, None, false);
        while let Some(name) = map.next_key::<FieldName>()? {
            match name.0.as_deref() {
                Some("key") if key => return Err(de::Error::duplicate_field("key")),
                Some("key") => {
                    map.next_value_seed(KeySeed(&mut p.arena))?;
                    key = true;
                }
                Some("rows") if rows.is_some() => return Err(de::Error::duplicate_field("rows")),
                Some("rows") => rows = Some(map.next_value::<u64>()?),
                Some("values") if values => return Err(de::Error::duplicate_field("values")),
                Some("values") => {
                    map.next_value_seed(ValuesSeed(&mut p.values))?;
                    values = true;
                }
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        if !key {
            return Err(de::Error::missing_field("key"));
        }
        if !values {
            return Err(de::Error::missing_field("values"));
        }
        let rows = rows.ok_or_else(|| de::Error::missing_field("rows"))?;
        p.close_group(rows);
        Ok(())
    }
}

/// A group's key: an array of parts, each nil or bytes, encoded into the
/// arena.
struct KeySeed<'a>(&'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of key parts")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(KeyPartSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// One key part: nil (the null key) or bytes (also accepted as a string
/// or an array of byte values, as [`ByteBuf`] accepts them).
struct KeyPartSeed<'a>(&'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for KeyPartSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for KeyPartSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("nil or bytes")
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.0.push(0);
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_bytes(self)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<(), E> {
        push_key_part(self.0, Some(v));
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.visit_bytes(v.as_bytes())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut bytes = Vec::new();
        while let Some(b) = seq.next_element::<u8>()? {
            bytes.push(b);
        }
        self.visit_bytes(&bytes)
    }
}

/// A group's value states, appended to the partial's.
struct ValuesSeed<'a>(&'a mut Vec<NumState>);

impl<'de> DeserializeSeed<'de> for ValuesSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ValuesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of value states")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(state) = seq.next_element::<NumState>()? {
            self.0.push(state);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::decode;

    fn state(x: f64) -> NumState {
        let mut s = NumState::default();
        s.push_f64(x);
        s
    }

    fn sample() -> Partial {
        let part = |s: &str| Some(ByteBuf::from(s.as_bytes().to_vec()));
        Partial {
            groups: vec![
                GroupState {
                    key: vec![part("Oslo"), None],
                    rows: 3,
                    values: vec![state(1.5), state(-2.0)],
                },
                GroupState {
                    key: vec![part(""), part("x\0y")],
                    rows: 1,
                    values: vec![],
                },
                GroupState {
                    key: vec![],
                    rows: 7,
                    values: vec![state(9.25)],
                },
            ],
        }
    }

    #[test]
    fn decodes_what_partial_encodes_by_name_and_by_position() {
        let p = sample();
        // As tally-worker writes it (groups and states as arrays), wholly
        // positional, and wholly by name (as a worker in another language
        // may write it).
        let ours = rmp_serde::to_vec_named(&p).unwrap();
        let positional = rmp_serde::to_vec(&p).unwrap();
        let named = rmp_serde::to_vec_named(&by_name(&p)).unwrap();
        assert_ne!(ours, named);
        for wire in [ours, positional, named] {
            let packed: PackedPartial = decode(&wire).unwrap();
            assert_eq!(packed.len(), 3);
            assert_eq!(Partial::from(&packed), p);
            assert_eq!(PackedPartial::from(&p), packed);
            assert_eq!(decode::<Partial>(&wire).unwrap(), p);
        }
    }

    #[test]
    fn encodes_the_bytes_partial_encodes() {
        // Packed, built group by group or converted, a partial goes on the
        // wire as the same bytes as the `Partial` (named and positional).
        let p = sample();
        let mut built = PackedPartial::default();
        for g in &p.groups {
            built.push_group(
                g.key.iter().map(|k| k.as_ref().map(|b| b.as_slice())),
                g.rows,
                g.values.iter().cloned(),
            );
        }
        let mut encoded = PackedPartial::default();
        for g in PackedPartial::from(&p).groups() {
            encoded.push_encoded_group(g.encoded_key, g.rows, g.values.iter().cloned());
        }
        assert_eq!(built, PackedPartial::from(p.clone()));
        assert_eq!(encoded, built);
        assert_eq!(
            rmp_serde::to_vec_named(&built).unwrap(),
            rmp_serde::to_vec_named(&p).unwrap()
        );
        assert_eq!(
            rmp_serde::to_vec(&built).unwrap(),
            rmp_serde::to_vec(&p).unwrap()
        );
        let empty = PackedPartial::default();
        assert_eq!(
            rmp_serde::to_vec_named(&empty).unwrap(),
            rmp_serde::to_vec_named(&Partial::default()).unwrap()
        );
    }

    /// `p` with its groups and states as maps keyed by field name.
    fn by_name(p: &Partial) -> NamedPartial {
        NamedPartial {
            groups: p
                .groups
                .iter()
                .map(|g| NamedGroup {
                    key: g.key.clone(),
                    rows: g.rows,
                    values: g
                        .values
                        .iter()
                        .map(|v| NamedState {
                            count: v.count,
                            sum_scaled: v.sum_scaled,
                            scale: v.scale,
                            sum_float: v.sum_float,
                            min: v.min,
                            max: v.max,
                            m2: v.m2,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    #[derive(serde::Serialize)]
    struct NamedPartial {
        groups: Vec<NamedGroup>,
    }

    #[derive(serde::Serialize)]
    struct NamedGroup {
        key: Vec<Option<ByteBuf>>,
        rows: u64,
        values: Vec<NamedState>,
    }

    #[derive(serde::Serialize)]
    struct NamedState {
        count: u64,
        sum_scaled: i64,
        scale: u8,
        sum_float: f64,
        min: f64,
        max: f64,
        m2: f64,
    }

    #[test]
    fn rejects_what_partial_rejects() {
        // A group without rows, a key part that is a number, a duplicate
        // field, a truncated body: errors, as the derived decoder gives.
        let missing_rows =
            rmp_serde::to_vec_named(&serde_json_like(&[("key", 0), ("values", 0)])).unwrap();
        assert!(decode::<PackedPartial>(&missing_rows).is_err());
        assert!(decode::<Partial>(&missing_rows).is_err());

        let ours = rmp_serde::to_vec_named(&sample()).unwrap();
        let named = rmp_serde::to_vec_named(&by_name(&sample())).unwrap();
        for wire in [ours, named] {
            for cut in 0..wire.len() {
                assert!(
                    decode::<PackedPartial>(&wire[..cut]).is_err(),
                    "cut at {cut}"
                );
            }
            for i in 0..wire.len() {
                let mut bad = wire.clone();
                bad[i] ^= 0xff;
                // Never panics; when both decode, they agree.
                let (a, b) = (decode::<PackedPartial>(&bad), decode::<Partial>(&bad));
                if let (Ok(a), Ok(b)) = (a, b) {
                    assert_eq!(Partial::from(&a), b, "byte {i}");
                }
            }
        }
    }

    /// `{"groups": [{fields...}]}` with each named field an empty array.
    fn serde_json_like(
        fields: &[(&'static str, u8)],
    ) -> std::collections::BTreeMap<
        &'static str,
        Vec<std::collections::BTreeMap<&'static str, Vec<u8>>>,
    > {
        let group = fields.iter().map(|&(k, _)| (k, Vec::new())).collect();
        [("groups", vec![group])].into_iter().collect()
    }

    /// `p` as its worker sends it in the columns form.
    fn columns_wire(p: &Partial) -> Vec<u8> {
        let mut packed = PackedPartial::from(p);
        packed.set_columns(true);
        rmp_serde::to_vec_named(&packed).unwrap()
    }

    #[test]
    fn columns_decode_to_the_same_groups() {
        let p = sample();
        let wire = columns_wire(&p);
        assert_ne!(wire, rmp_serde::to_vec_named(&p).unwrap());
        let packed: PackedPartial = decode(&wire).unwrap();
        assert_eq!(Partial::from(&packed), p);
        // Every field of every state survives, infinities and NaN's bits
        // included (min and max of an empty state are infinite).
        let mut odd = NumState::default();
        (odd.count, odd.sum_scaled, odd.scale) = (u64::MAX, i64::MIN, 18);
        (odd.sum_float, odd.m2) = (f64::NAN, -0.0);
        let mut one = PackedPartial::default();
        one.push_group([Some(&b"k"[..])], u64::MAX, [odd.clone()]);
        one.set_columns(true);
        let back: PackedPartial = decode(&rmp_serde::to_vec_named(&one).unwrap()).unwrap();
        let got = back.group(0).unwrap().values[0].clone();
        assert_eq!(
            (got.count, got.sum_scaled, got.scale),
            (u64::MAX, i64::MIN, 18)
        );
        assert_eq!(got.sum_float.to_bits(), odd.sum_float.to_bits());
        assert_eq!(got.m2.to_bits(), (-0.0f64).to_bits());
        assert_eq!((got.min, got.max), (f64::INFINITY, f64::NEG_INFINITY));
        assert_eq!(back.group(0).unwrap().rows, u64::MAX);
        // No group at all.
        let mut empty = PackedPartial::default();
        empty.set_columns(true);
        let back: PackedPartial = decode(&rmp_serde::to_vec_named(&empty).unwrap()).unwrap();
        assert!(back.is_empty());
    }

    #[test]
    fn columns_that_disagree_are_refused() {
        let good = Columns::of(&PackedPartial::from(&sample()));
        let wire = |c: &Columns| {
            let partial: std::collections::BTreeMap<&str, &Columns> = [("columns", c)].into();
            rmp_serde::to_vec_named(&partial).unwrap()
        };
        assert!(decode::<PackedPartial>(&wire(&good)).is_ok());
        let mut cases: Vec<(&str, Columns)> = Vec::new();
        let with = |f: &dyn Fn(&mut Columns)| {
            let mut c = Columns {
                key_ends: good.key_ends.clone(),
                keys: good.keys.clone(),
                rows: good.rows.clone(),
                value_ends: good.value_ends.clone(),
                states: good.states.clone(),
            };
            f(&mut c);
            c
        };
        cases.push(("a row short", with(&|c| c.rows.truncate(16))));
        cases.push(("odd bytes", with(&|c| c.key_ends.push(0))));
        cases.push((
            "a state cut",
            with(&|c| c.states.pop().map(drop).unwrap_or(())),
        ));
        cases.push(("keys left over", with(&|c| c.keys.push(0))));
        cases.push((
            "a key end past the keys",
            with(&|c| c.key_ends[16..24].copy_from_slice(&u64::MAX.to_le_bytes())),
        ));
        cases.push((
            "key ends going back",
            with(&|c| c.key_ends[..8].copy_from_slice(&1000u64.to_le_bytes())),
        ));
        cases.push((
            "value ends going back",
            with(&|c| c.value_ends[8..16].copy_from_slice(&0u64.to_le_bytes())),
        ));
        cases.push(("a broken key", with(&|c| c.keys[0] = 7)));
        for (what, c) in &cases {
            let err = decode::<PackedPartial>(&wire(c)).expect_err(what);
            assert!(err.to_string().contains("columns"), "{what}: {err}");
        }
        // Both forms at once, and a cut anywhere: errors, never a panic.
        #[derive(serde::Serialize)]
        struct Both<'a> {
            columns: &'a Columns,
            groups: Vec<u8>,
        }
        let both = rmp_serde::to_vec_named(&Both {
            columns: &good,
            groups: Vec::new(),
        })
        .unwrap();
        assert!(decode::<PackedPartial>(&both).is_err());
        let full = wire(&good);
        for cut in 0..full.len() {
            assert!(decode::<PackedPartial>(&full[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn keys_round_trip_through_the_encoding() {
        for g in sample().groups {
            let mut enc = Vec::new();
            encode_key_into(&g.key, &mut enc);
            assert_eq!(decode_key(&enc), g.key);
        }
    }
}

//! Messages made from descriptors alone: plausible ones (what a studio
//! would send, ids from a pool) and hostile ones (extreme integers, huge and
//! odd Unicode, out-of-range timestamps and durations, unknown enum values,
//! thousands of repeated entries), mixed field by field.

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, Value};

/// `SplitMix64`: small, fast and the same on every machine, so a seed
/// replays.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for one labelled case of a run: the same seed and label
    /// give the same messages whatever ran before.
    pub(crate) fn for_case(seed: u64, label: &str) -> Self {
        // FNV-1a of the label, mixed with the seed.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in label.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        Self(seed ^ hash.rotate_left(17))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }

    /// True `percent` times in a hundred.
    pub(crate) fn percent(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub(crate) fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

/// How a message is made.
pub(crate) struct Gen<'a> {
    pub(crate) rng: Rng,
    /// Ids to put in id fields.
    pub(crate) ids: &'a [String],
    /// Seconds since the epoch of the server's clock.
    pub(crate) now: i64,
    /// Of a hundred set fields, how many get a hostile value.
    pub(crate) hostility: usize,
}

const MAX_DEPTH: u32 = 4;

impl Gen<'_> {
    /// A message of `desc`.
    pub(crate) fn message(&mut self, desc: &MessageDescriptor) -> DynamicMessage {
        self.message_at(desc, 0, &[])
    }

    fn message_at(
        &mut self,
        desc: &MessageDescriptor,
        depth: u32,
        mask_paths: &[String],
    ) -> DynamicMessage {
        match desc.full_name() {
            "google.protobuf.Timestamp" => return self.timestamp(desc),
            "google.protobuf.Duration" => return self.duration(desc),
            "google.protobuf.FieldMask" => return self.mask(desc, mask_paths),
            _ => {}
        }
        let mut message = DynamicMessage::new(desc.clone());
        // An update mask names fields of the message it updates.
        let siblings: Vec<String> = desc
            .fields()
            .find_map(|f| match f.kind() {
                Kind::Message(m) if !m.full_name().starts_with("google.") => {
                    Some(m.fields().map(|f| f.name().to_owned()).collect())
                }
                _ => None,
            })
            .unwrap_or_default();
        for field in desc.fields() {
            if self.rng.percent(15) {
                continue;
            }
            if depth >= MAX_DEPTH && matches!(field.kind(), Kind::Message(_)) {
                continue;
            }
            let hostile = self.rng.percent(self.hostility);
            let value = if field.is_map() {
                self.map(&field, depth, hostile)
            } else if field.is_list() {
                self.list(&field, depth, hostile, &siblings)
            } else {
                self.single(&field, depth, hostile, &siblings)
            };
            message.set_field(&field, value);
        }
        message
    }

    fn list(
        &mut self,
        field: &FieldDescriptor,
        depth: u32,
        hostile: bool,
        siblings: &[String],
    ) -> Value {
        let count = if hostile {
            self.rng.pick(&[0, 1500, 3000, 5000])
        } else {
            self.rng.below(3)
        };
        // Thousands of entries, each of them plausible: the size is the
        // attack, not a 4 MiB message.
        let keep = self.hostility;
        if count > 10 {
            self.hostility = 0;
        }
        let items = (0..count)
            .map(|_| {
                let hostile = self.rng.percent(self.hostility);
                self.single(field, depth + 1, hostile, siblings)
            })
            .collect();
        self.hostility = keep;
        Value::List(items)
    }

    fn map(&mut self, field: &FieldDescriptor, depth: u32, hostile: bool) -> Value {
        let Kind::Message(entry) = field.kind() else {
            return Value::Map(std::collections::HashMap::default());
        };
        let (Some(key), Some(value)) = (entry.get_field(1), entry.get_field(2)) else {
            return Value::Map(std::collections::HashMap::default());
        };
        let count = if hostile {
            self.rng.pick(&[0, 2000])
        } else {
            self.rng.below(3)
        };
        let mut map = std::collections::HashMap::new();
        for n in 0..count {
            let key = match self.single(&key, depth + 1, hostile && n == 0, &[]) {
                Value::String(s) => MapKey::String(s),
                Value::I32(v) => MapKey::I32(v),
                Value::I64(v) => MapKey::I64(v),
                Value::U32(v) => MapKey::U32(v),
                Value::U64(v) => MapKey::U64(v),
                Value::Bool(v) => MapKey::Bool(v),
                _ => MapKey::String(format!("k{n}")),
            };
            let value = self.single(&value, depth + 1, false, &[]);
            map.insert(key, value);
        }
        Value::Map(map)
    }

    fn single(
        &mut self,
        field: &FieldDescriptor,
        depth: u32,
        hostile: bool,
        siblings: &[String],
    ) -> Value {
        let name = field.name();
        match field.kind() {
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(if hostile {
                self.rng
                    .pick(&[i32::MIN, i32::MAX, -1, 1 << 30, -(1 << 30), 86_400])
            } else if name == "page_size" {
                self.rng.pick(&[0, 1, 2, 50])
            } else {
                self.rng.pick(&[0, 1, 2, 3, 5])
            }),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(if hostile {
                self.rng
                    .pick(&[i64::MIN, i64::MAX, -1, 1 << 40, -(1 << 40), i64::MIN + 1])
            } else {
                self.rng.pick(&[0, 1, 60, 3600])
            }),
            Kind::Uint32 | Kind::Fixed32 => Value::U32(if hostile {
                self.rng.pick(&[u32::MAX, 1 << 31, 101, 0])
            } else {
                self.rng.pick(&[0, 1, 2, 3])
            }),
            Kind::Uint64 | Kind::Fixed64 => Value::U64(if hostile {
                self.rng.pick(&[u64::MAX, 1 << 63, 0])
            } else {
                self.rng.pick(&[0, 1, 60])
            }),
            Kind::Float => Value::F32(if hostile {
                self.rng
                    .pick(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX, -0.0])
            } else {
                self.rng.pick(&[-110.0, 20.0, 1.5])
            }),
            Kind::Double => Value::F64(if hostile {
                self.rng.pick(&[
                    f64::NAN,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    f64::MAX,
                    f64::MIN_POSITIVE,
                    -1e308,
                ])
            } else {
                self.rng.pick(&[-110.0, -90.0, 20.0, 1.5])
            }),
            Kind::Bool => Value::Bool(self.rng.percent(50)),
            Kind::String => Value::String(if hostile {
                self.hostile_string()
            } else {
                self.plausible_string(name)
            }),
            Kind::Bytes => Value::Bytes(prost::bytes::Bytes::from(
                (0..self.rng.below(64))
                    .map(|_| (self.rng.next() & 0xff) as u8)
                    .collect::<Vec<u8>>(),
            )),
            Kind::Enum(e) => Value::EnumNumber(if hostile {
                self.rng.pick(&[999, -1, i32::MAX, i32::MIN])
            } else {
                let values: Vec<i32> = e.values().map(|v| v.number()).collect();
                self.rng.pick(&values)
            }),
            Kind::Message(m) => Value::Message(if hostile && depth < MAX_DEPTH {
                let keep = self.hostility;
                self.hostility = 60;
                let message = self.message_at(&m, depth + 1, siblings);
                self.hostility = keep;
                message
            } else {
                self.message_at(&m, depth + 1, siblings)
            }),
        }
    }

    fn plausible_string(&mut self, name: &str) -> String {
        let id_like = name == "id" || name.ends_with("_id") || name.ends_with("_ids");
        match name {
            "request_id" => format!("fuzz-{:016x}", self.rng.next()),
            "page_token" | "next_page_token" => String::new(),
            _ if id_like => {
                if self.ids.is_empty() || self.rng.percent(8) {
                    String::new()
                } else {
                    self.rng.pick(self.ids)
                }
            }
            "day" | "purchase_date" | "race_evening" | "closure_dates" => self
                .rng
                .pick(&["2026-12-02", "2026-12-01", "2026-12-05"])
                .to_owned(),
            "date_of_birth" => "1990-05-01".to_owned(),
            "time_zone" => self
                .rng
                .pick(&["America/New_York", "Europe/Berlin", "UTC"])
                .to_owned(),
            "open" => "06:00".to_owned(),
            "close" => "22:00".to_owned(),
            "email" => "fuzz@example.com".to_owned(),
            "phone" => "+1 555 0100".to_owned(),
            "version" | "required_waiver_version" | "questionnaire_version" => "v1".to_owned(),
            "firmware_version" => "1.2.3".to_owned(),
            "prefix" | "query" => "Fu".to_owned(),
            _ => format!("Fuzz {}", self.rng.below(1000)),
        }
    }

    fn hostile_string(&mut self) -> String {
        match self.rng.below(20) {
            0 => String::new(),
            1 => "x".repeat(100_000),
            2 => "é".repeat(30_000),
            3 => "🧊\u{200d}🔥".repeat(4_000),
            4 => "\u{0}\u{1}\u{7f}".to_owned(),
            5 => "\u{202e}evil\u{202c}\u{feff}".to_owned(),
            6 => format!("a{}", "\u{0301}".repeat(10_000)),
            7 => "'; DROP TABLE bookings; --".to_owned(),
            8 => "%_\\%".to_owned(),
            9 => "\u{10ffff}\u{fffd}".to_owned(),
            10 => "9999-12-31".to_owned(),
            11 => "0000-01-01".to_owned(),
            12 => "2026-02-30".to_owned(),
            13 => "24:00".to_owned(),
            14 => "Mars/Olympus_Mons".to_owned(),
            15 => "0".repeat(5_000),
            16 => " ".to_owned(),
            17 => {
                if self.ids.is_empty() {
                    "-1".to_owned()
                } else {
                    format!("{} ", self.rng.pick(self.ids))
                }
            }
            18 => "019a0000-0000-7000-8000-000000000000".to_owned(),
            _ => "-9223372036854775808".to_owned(),
        }
    }

    fn timestamp(&mut self, desc: &MessageDescriptor) -> DynamicMessage {
        let (seconds, nanos) = if self.rng.percent(self.hostility) {
            (
                self.rng.pick(&[
                    i64::MIN,
                    i64::MAX,
                    -62_135_596_801,
                    253_402_300_800,
                    0,
                    self.now,
                ]),
                self.rng.pick(&[0, -1, 1_000_000_000, i32::MAX, i32::MIN]),
            )
        } else {
            // Within the next days, on the three-minute grid.
            let offset = i64::try_from(self.rng.below(4 * 480)).unwrap_or(0) * 180;
            (self.now - self.now % 180 + offset, 0)
        };
        let mut message = DynamicMessage::new(desc.clone());
        message.set_field_by_name("seconds", Value::I64(seconds));
        message.set_field_by_name("nanos", Value::I32(nanos));
        message
    }

    fn duration(&mut self, desc: &MessageDescriptor) -> DynamicMessage {
        let (seconds, nanos) = if self.rng.percent(self.hostility) {
            (
                self.rng
                    .pick(&[i64::MIN, i64::MAX, -1, 315_576_000_001, 0, 1]),
                self.rng.pick(&[0, -1, 1_000_000_000, i32::MAX, i32::MIN]),
            )
        } else {
            (self.rng.pick(&[180, 600, 3600, 86_400]), 0)
        };
        let mut message = DynamicMessage::new(desc.clone());
        message.set_field_by_name("seconds", Value::I64(seconds));
        message.set_field_by_name("nanos", Value::I32(nanos));
        message
    }

    fn mask(&mut self, desc: &MessageDescriptor, siblings: &[String]) -> DynamicMessage {
        let paths: Vec<Value> = if self.rng.percent(self.hostility) {
            let odd = [
                "*",
                "",
                "a.b.c",
                "id",
                "tenant_id",
                "display_name.display_name",
            ];
            (0..self.rng.pick(&[1, 3, 2000]))
                .map(|_| Value::String(self.rng.pick(&odd).to_owned()))
                .collect()
        } else if siblings.is_empty() {
            Vec::new()
        } else {
            (0..=self.rng.below(2))
                .map(|_| Value::String(self.rng.pick(siblings)))
                .collect()
        };
        let mut message = DynamicMessage::new(desc.clone());
        message.set_field_by_name("paths", Value::List(paths));
        message
    }
}

/// Every id-looking string in `message`, recursively: fields named `id`,
/// `…_id` or `…_ids`.
pub(crate) fn ids_in(message: &DynamicMessage, out: &mut Vec<String>) {
    for (field, value) in message.fields() {
        let name = field.name();
        let id_like = name == "id" || name.ends_with("_id") || name.ends_with("_ids");
        collect(value, id_like && name != "request_id", out);
    }
}

fn collect(value: &Value, id_like: bool, out: &mut Vec<String>) {
    match value {
        Value::String(s) if id_like && !s.is_empty() => out.push(s.clone()),
        Value::Message(m) => ids_in(m, out),
        Value::List(items) => items.iter().for_each(|v| collect(v, id_like, out)),
        Value::Map(map) => map.values().for_each(|v| collect(v, id_like, out)),
        _ => {}
    }
}

/// Every string anywhere in `message`.
pub(crate) fn strings_in(message: &DynamicMessage, out: &mut Vec<String>) {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Message(m) => strings_in(m, out),
            Value::List(items) => items.iter().for_each(|v| walk(v, out)),
            Value::Map(map) => map.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    for (_, value) in message.fields() {
        walk(value, out);
    }
}

//! Clients: their personal fields, validated on receive.

use jiff::civil::Date;
use recovery_kit::idempotency::Key;
use recovery_kit::ids::parse_id;
use recovery_kit::page::{Binding, Page};
use recovery_kit::wire::{optional_text, update_paths};
use recovery_kit::{Error, Scope, Violations};
use recovery_proto::protocols::v1 as pb;

use super::{Create, date, name, optional_name};

/// A client's fields as validated from a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClientFields {
    pub(crate) given_name: String,
    pub(crate) family_name: String,
    pub(crate) email: String,
    pub(crate) phone: String,
    pub(crate) date_of_birth: Option<Date>,
    pub(crate) emergency_name: String,
    pub(crate) emergency_phone: String,
    pub(crate) emergency_relationship: String,
}

/// The client fields an update may name.
const CLIENT_PATHS: [&str; 6] = [
    "given_name",
    "family_name",
    "email",
    "phone",
    "date_of_birth",
    "emergency_contact",
];

impl ClientFields {
    /// Validates the fields named in `paths` (every field when `None`) of
    /// `client` into `self`, recording problems under `client.`.
    fn apply(
        &mut self,
        client: &pb::Client,
        paths: Option<&[&str]>,
        today: Date,
        v: &mut Violations,
    ) {
        let named = |p: &str| paths.is_none_or(|paths| paths.contains(&p));
        let mut take = |path: &str, field: &str, result: Result<String, String>| {
            if named(path) {
                v.check(field, result)
            } else {
                None
            }
        };
        if let Some(x) = take("given_name", "client.given_name", name(&client.given_name)) {
            self.given_name = x;
        }
        if let Some(x) = take(
            "family_name",
            "client.family_name",
            name(&client.family_name),
        ) {
            self.family_name = x;
        }
        if let Some(x) = take("email", "client.email", email(&client.email)) {
            self.email = x;
        }
        if let Some(x) = take("phone", "client.phone", phone(&client.phone)) {
            self.phone = x;
        }
        if named("date_of_birth")
            && let Some(x) = v.check(
                "client.date_of_birth",
                date_of_birth(&client.date_of_birth, today),
            )
        {
            self.date_of_birth = x;
        }
        if named("emergency_contact") {
            let ec = client.emergency_contact.clone().unwrap_or_default();
            if let Some(x) = v.check("client.emergency_contact.name", optional_name(&ec.name)) {
                self.emergency_name = x;
            }
            if let Some(x) = v.check("client.emergency_contact.phone", phone(&ec.phone)) {
                self.emergency_phone = x;
            }
            if let Some(x) = v.check(
                "client.emergency_contact.relationship",
                optional_name(&ec.relationship),
            ) {
                self.emergency_relationship = x;
            }
        }
    }

    /// The fields of a stored client (validated when written).
    pub(crate) fn stored(client: pb::Client) -> ClientFields {
        let contact = client.emergency_contact.unwrap_or_default();
        ClientFields {
            given_name: client.given_name,
            family_name: client.family_name,
            email: client.email,
            phone: client.phone,
            date_of_birth: date(&client.date_of_birth).ok(),
            emergency_name: contact.name,
            emergency_phone: contact.phone,
            emergency_relationship: contact.relationship,
        }
    }

    /// Lowercased text a search matches against.
    pub(crate) fn search_text(&self) -> String {
        format!(
            "{} {} | {} | {}",
            self.given_name, self.family_name, self.email, self.phone
        )
        .to_lowercase()
    }
}

/// A validated `CreateClient`.
pub(crate) struct NewClient {
    pub(crate) fields: ClientFields,
    pub(crate) key: Option<Key>,
}

impl NewClient {
    pub(crate) fn parse(
        req: &pb::CreateClientRequest,
        scope: &Scope,
        today: Date,
    ) -> Result<Self, Error> {
        let mut v = Violations::new();
        let mut fields = ClientFields::default();
        fields.apply(&req.client.clone().unwrap_or_default(), None, today, &mut v);
        let key = req.key(scope, &mut v);
        v.finish()?;
        Ok(Self { fields, key })
    }
}

/// A validated `UpdateClient`: which fields change, to what.
pub(crate) struct ClientPatch {
    pub(crate) id: String,
    pub(crate) paths: Vec<&'static str>,
    values: ClientFields,
}

impl ClientPatch {
    /// The fields follow AIP-134 (`update_paths`): the mask's, or every
    /// field the patch populates. A mask naming an unknown field leaves the
    /// values unchecked: the caller fixes the mask first.
    pub(crate) fn parse(req: &pb::UpdateClientRequest, today: Date) -> Result<Self, Error> {
        let patch = req.client.clone().unwrap_or_default();
        let mut v = Violations::new();
        let id = v.check("client.id", parse_id(&patch.id));
        let populated = [
            ("given_name", !patch.given_name.is_empty()),
            ("family_name", !patch.family_name.is_empty()),
            ("email", !patch.email.is_empty()),
            ("phone", !patch.phone.is_empty()),
            ("date_of_birth", !patch.date_of_birth.is_empty()),
            ("emergency_contact", patch.emergency_contact.is_some()),
        ];
        let sound = req.update_mask.as_ref().is_none_or(|m| {
            m.paths
                .iter()
                .all(|p| p == "*" || CLIENT_PATHS.contains(&p.as_str()))
        });
        let paths = update_paths(req.update_mask.as_ref(), &populated, &mut v);
        let mut values = ClientFields::default();
        if sound {
            values.apply(&patch, Some(&paths), today, &mut v);
        }
        let id = v.finish_with(id)?;
        Ok(Self { id, paths, values })
    }

    /// Sets the named fields of `fields` to the patch's values.
    pub(crate) fn apply_to(&self, fields: &mut ClientFields) {
        let changed = &self.values;
        for path in &self.paths {
            match *path {
                "given_name" => fields.given_name.clone_from(&changed.given_name),
                "family_name" => fields.family_name.clone_from(&changed.family_name),
                "email" => fields.email.clone_from(&changed.email),
                "phone" => fields.phone.clone_from(&changed.phone),
                "date_of_birth" => fields.date_of_birth = changed.date_of_birth,
                _ => {
                    fields.emergency_name.clone_from(&changed.emergency_name);
                    fields.emergency_phone.clone_from(&changed.emergency_phone);
                    fields
                        .emergency_relationship
                        .clone_from(&changed.emergency_relationship);
                }
            }
        }
    }
}

/// A validated `ListClients`: lowercased search text (empty: everyone) and
/// the page.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ClientSearch {
    pub(crate) text: String,
    pub(crate) page: Page,
}

impl ClientSearch {
    pub(crate) fn parse(req: &pb::ListClientsRequest, binding: &Binding) -> Result<Self, Error> {
        let mut v = Violations::new();
        let page = Page::parse(req.page_size, &req.page_token, binding, &mut v);
        let text = v
            .check("query", optional_text(&req.query, 200))
            .unwrap_or_default()
            .to_lowercase();
        v.finish()?;
        Ok(Self { text, page })
    }
}

/// An optional email address of the shape `local@domain.tld`, lowercased
/// in the domain.
fn email(value: &str) -> Result<String, String> {
    let text = value.trim();
    if text.is_empty() {
        return Ok(String::new());
    }
    let bad = || format!("{text:?} is not an email address (name@domain.tld)");
    if text.len() > 254 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = text.rsplit_once('@').ok_or_else(bad)?;
    let labels: Vec<&str> = domain.split('.').collect();
    if local.is_empty()
        || local.contains('@')
        || labels.len() < 2
        || labels
            .iter()
            .any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-'))
        || !domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
    {
        return Err(bad());
    }
    Ok(format!("{local}@{}", domain.to_lowercase()))
}

/// An optional phone number: digits, spaces and `+-().`, 5 to 32
/// characters with at least 5 digits.
fn phone(value: &str) -> Result<String, String> {
    let text = value.trim();
    if text.is_empty() {
        return Ok(String::new());
    }
    let digits = text.chars().filter(char::is_ascii_digit).count();
    if text.len() > 32
        || digits < 5
        || !text
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
    {
        return Err(format!("{text:?} is not a phone number"));
    }
    Ok(text.to_owned())
}

/// An optional date of birth: not in the future, not before 1900.
fn date_of_birth(value: &str, today: Date) -> Result<Option<Date>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    let dob = date(value)?;
    if dob > today {
        Err("must not be in the future".to_owned())
    } else if dob.year() < 1900 {
        Err("must be in 1900 or later".to_owned())
    } else {
        Ok(Some(dob))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(email("Ana@Example.COM").unwrap(), "Ana@example.com");
        assert_eq!(email("").unwrap(), "");
        for bad in [
            "ana",
            "ana@",
            "@x.com",
            "ana@x",
            "ana@@x.com",
            "a b@x.com",
            "ana@x..com",
            "ana@-x.com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones() {
        assert!(phone("+49 (30) 1234-567").is_ok());
        assert!(phone("12").is_err());
        assert!(phone("call me").is_err());
    }

    #[test]
    fn an_omitted_mask_updates_the_populated_fields() {
        let today = "2026-11-28".parse().unwrap();
        let req = pb::UpdateClientRequest {
            client: Some(pb::Client {
                id: recovery_kit::ids::new_id(),
                email: "ana.l@example.org".into(),
                ..Default::default()
            }),
            update_mask: None,
        };
        let patch = ClientPatch::parse(&req, today).unwrap();
        assert_eq!(patch.paths, ["email"]);
        let mut fields = ClientFields {
            given_name: "Ana".into(),
            ..Default::default()
        };
        patch.apply_to(&mut fields);
        assert_eq!(
            (fields.given_name.as_str(), fields.email.as_str()),
            ("Ana", "ana.l@example.org")
        );
    }
}

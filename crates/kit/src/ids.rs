//! Server-generated ids: UUIDv7 strings, which sort by creation time.

/// A new id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Validates an id from a request; `Err` is the field problem.
pub fn parse_id(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("required".to_owned());
    }
    uuid::Uuid::try_parse(value)
        .map(|u| u.to_string())
        .map_err(|_| format!("{value:?} is not a valid id (a UUID)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation_and_parse() {
        let a = new_id();
        let b = new_id();
        assert!(a < b);
        assert_eq!(parse_id(&a.to_uppercase()).unwrap(), a);
        assert!(parse_id("").is_err());
        assert!(parse_id("42").is_err());
    }
}

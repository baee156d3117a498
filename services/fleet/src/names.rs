//! Fieldless enums named two ways, written once as a table: a stable
//! lowercase name stored in the database and a variant of a wire enum.

/// Declares an enum from a table of `Variant = "stored_name" => WireVariant`
/// rows and gives it `ALL`, `as_str`, `parse` (stored names), `to_wire` and
/// `from_wire` (0, the wire's UNSPECIFIED, is `None`; an unknown number is
/// a field problem saying it is not `$what`).
macro_rules! names {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident: $wire:ty, $what:literal {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal => $wire_variant:ident,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub(crate) const ALL: &[$name] = &[$($name::$variant,)+];

            /// The stable name stored in the database.
            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Parses [`Self::as_str`].
            pub(crate) fn parse(name: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == name)
            }

            /// The wire variant.
            pub(crate) fn to_wire(self) -> $wire {
                match self {
                    $($name::$variant => <$wire>::$wire_variant,)+
                }
            }

            /// `None` for unspecified; `Err` for a number the wire enum
            /// does not have.
            pub(crate) fn from_wire(value: i32) -> Result<Option<$name>, String> {
                if value == 0 {
                    return Ok(None);
                }
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.to_wire() as i32 == value)
                    .map(Some)
                    .ok_or_else(|| format!("{value} is not {}", $what))
            }
        }
    };
}

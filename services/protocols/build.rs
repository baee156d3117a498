//! `sqlx::migrate!` embeds `migrations/` when the crate is compiled, and
//! cargo does not see a file added there: this makes it rebuild the crate
//! when one is (as sqlx's docs advise).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

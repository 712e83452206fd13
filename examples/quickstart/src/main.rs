//! `cargo run -p brokkr-example-quickstart` — see the library docs.

use std::sync::Arc;

use brokkr_store::SqlStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    let store = SqlStore::connect(&url).await?;
    let walkthrough = brokkr_example_quickstart::walkthrough(Arc::new(store)).await?;
    for step in &walkthrough.steps {
        println!("- {step}");
    }
    println!("{} audit records written", walkthrough.audit_records);
    Ok(())
}

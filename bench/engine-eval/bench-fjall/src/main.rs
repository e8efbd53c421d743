#[path = "../../common.rs"]
mod common;
use common::{Engine, KV};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

struct F { db: Database, ks: Keyspace, mode: PersistMode }

impl Engine for F {
    fn open(dir: &str) -> Result<Self, String> {
        let db = Database::builder(dir).open().map_err(|e| e.to_string())?;
        // one keyspace; buckets are a key prefix ("bNN/...")
        let ks = db.keyspace("kv", KeyspaceCreateOptions::default).map_err(|e| e.to_string())?;
        let mode = match std::env::var("FJALL_SYNC").as_deref() { Ok("all") => PersistMode::SyncAll, _ => PersistMode::SyncData };
        Ok(F { db, ks, mode })
    }
    fn write_durable(&self, batch: &[KV]) -> Result<(), String> {
        // atomic batch; journal write + fdatasync done inside commit() under the journal lock
        let mut b = self.db.batch().durability(Some(self.mode));
        for (k, v) in batch { b.insert(&self.ks, k.clone(), v.clone()); }
        b.commit().map_err(|e| format!("{e:?}"))
    }
    fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>, String> {
        self.ks.get(k).map(|o| o.map(|s| s.to_vec())).map_err(|e| format!("{e:?}"))
    }
}
fn main() { common::main_for::<F>() }

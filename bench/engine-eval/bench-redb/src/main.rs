#[path = "../../common.rs"]
mod common;
use common::{Engine, KV};
use redb::{Database, Durability, ReadableDatabase, TableDefinition};

// one table; buckets are a key prefix (alternatively one TableDefinition per bucket, names are runtime &str)
const T: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
struct R { db: Database }

impl Engine for R {
    fn open(dir: &str) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let mut b = Database::builder();
        if std::env::var("REDB_CHECK").is_ok() { b.set_check_integrity_on_open(true); } // verify whole file on open
        let db = b.create(format!("{dir}/data.redb")).map_err(|e| format!("{e:?}"))?;
        Ok(R { db })
    }
    fn write_durable(&self, batch: &[KV]) -> Result<(), String> {
        let mut tx = self.db.begin_write().map_err(|e| format!("{e:?}"))?;
        tx.set_durability(Durability::Immediate).map_err(|e| format!("{e:?}"))?; // the default anyway
        {
            let mut t = tx.open_table(T).map_err(|e| format!("{e:?}"))?;
            for (k, v) in batch { t.insert(k.as_slice(), v.as_slice()).map_err(|e| format!("{e:?}"))?; }
        }
        tx.commit().map_err(|e| format!("{e:?}"))
    }
    fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let rtx = self.db.begin_read().map_err(|e| format!("{e:?}"))?;
        let t = match rtx.open_table(T) { Ok(t) => t, Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None), Err(e) => return Err(format!("{e:?}")) };
        t.get(k).map(|o| o.map(|g| g.value().to_vec())).map_err(|e| format!("{e:?}"))
    }
}
fn main() { common::main_for::<R>() }

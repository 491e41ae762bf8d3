//! Dead-letter helpers shared by the admin API and `sluice dlq`.

use sluice_store::{DeadLetterId, DlqFilter, MAX_DLQ_LIMIT, Store, StoreError};

/// Every dead-letter id matching `filter`, walking the pages.
pub async fn matching_ids(
    store: &dyn Store,
    mut filter: DlqFilter,
) -> Result<Vec<DeadLetterId>, StoreError> {
    filter.limit = Some(MAX_DLQ_LIMIT);
    let mut ids = Vec::new();
    loop {
        let page = store.dlq_list(&filter).await?;
        let Some(last) = page.last() else {
            break;
        };
        filter.after_id = Some(last.id);
        let full = page.len() as u32 == MAX_DLQ_LIMIT;
        ids.extend(page.into_iter().map(|d| d.id));
        if !full {
            break;
        }
    }
    Ok(ids)
}

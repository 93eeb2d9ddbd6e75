use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use aws_sdk_dynamodb::Client;

use super::item::{batch_get_all, conditional, get_n, get_n_or, get_opt_s, get_s, n, s, Item};
use crate::generate::ProductState;
use crate::ports::products::*;
use crate::ports::DownstreamError;
use crate::version::{classify, Classification};
use crate::{ApplyOutcome, Product, ProductChanged, StockAndPrice};

/// The value of `listing` on every product: the partition key of the catalogue index,
/// so listing the whole catalogue is a Query in product-id order, not a Scan.
pub const LISTING: &str = "product";
pub const CATALOG_INDEX: &str = "CatalogIndex";
pub const CATEGORY_INDEX: &str = "CategoryIndex";

/// The products table: one item per product, keyed by `productId`.
///
/// Besides the product's own fields it holds `lastChangeId` (to tell a redelivery
/// from a different change with the same version) and `publishedVersion`, the
/// generator's record of the last version it published.
#[derive(Clone)]
pub struct DynamoProducts {
    client: Client,
    table: String,
}

impl DynamoProducts {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn scan_items(&self) -> Result<Vec<Item>, DownstreamError> {
        self.client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| DownstreamError::aws("Scan products", e))
    }

    async fn get_item(&self, product_id: &str) -> Result<Option<Item>, DownstreamError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("productId", s(product_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DownstreamError::aws("GetItem product", e))?;
        Ok(out.item)
    }

    /// Writes a seed product unless it already exists; returns whether it was written.
    pub async fn insert_if_absent(&self, product: &Product) -> Result<bool, DownstreamError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(product_to_item(product)))
            .condition_expression("attribute_not_exists(productId)")
            .send()
            .await;
        Ok(conditional(result, "PutItem product")?.is_some())
    }
}

#[async_trait]
impl GeneratorStore for DynamoProducts {
    async fn generator_states(&self) -> Result<Vec<ProductState>, DownstreamError> {
        self.scan_items()
            .await?
            .iter()
            .map(product_state_from_item)
            .collect()
    }

    async fn record_published(
        &self,
        product_id: &str,
        version: u64,
    ) -> Result<bool, DownstreamError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("productId", s(product_id))
            .update_expression("SET publishedVersion = :v")
            .condition_expression("attribute_exists(productId) AND (attribute_not_exists(publishedVersion) OR publishedVersion < :v)")
            .expression_attribute_values(":v", n(version))
            .send()
            .await;
        Ok(conditional(result, "UpdateItem publishedVersion")?.is_some())
    }
}

#[async_trait]
impl CatalogReader for DynamoProducts {
    async fn product(&self, product_id: &str) -> Result<Option<Product>, DownstreamError> {
        self.get_item(product_id)
            .await?
            .as_ref()
            .map(product_from_item)
            .transpose()
    }

    async fn page(
        &self,
        category: Option<&str>,
        limit: usize,
        after: Option<&PageKey>,
    ) -> Result<Page, DownstreamError> {
        let query = self.client.query().table_name(&self.table);
        let (query, partition) = match category {
            Some(category) => (
                query
                    .index_name(CATEGORY_INDEX)
                    .key_condition_expression("category = :p"),
                ("category", category),
            ),
            None => (
                query
                    .index_name(CATALOG_INDEX)
                    .key_condition_expression("listing = :p"),
                ("listing", LISTING),
            ),
        };
        let start = after.map(|key| {
            Item::from([
                ("productId".to_owned(), s(&key.product_id)),
                (partition.0.to_owned(), s(partition.1)),
            ])
        });
        let out = query
            .expression_attribute_values(":p", s(partition.1))
            .set_exclusive_start_key(start)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| DownstreamError::aws("Query products", e))?;
        let products = out
            .items()
            .iter()
            .map(product_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::new(
            products,
            out.last_evaluated_key().is_some(),
            category,
        ))
    }
}

#[async_trait]
impl PhotoRecords for DynamoProducts {
    async fn next_photo_version(&self, product_id: &str) -> Result<Option<u64>, DownstreamError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("productId", s(product_id))
            .update_expression("ADD photoUploads :one")
            .condition_expression("attribute_exists(productId)")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match conditional(result, "UpdateItem photoUploads")? {
            Some(out) => Ok(Some(get_n(
                &out.attributes.unwrap_or_default(),
                "photoUploads",
            )?)),
            None => Ok(None),
        }
    }

    async fn set_photo(
        &self,
        product_id: &str,
        version: u64,
        photo_key: &str,
        thumb_key: &str,
    ) -> Result<bool, DownstreamError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("productId", s(product_id))
            .update_expression("SET photoKey = :photo, thumbKey = :thumb, photoVersion = :v")
            .condition_expression(
                "attribute_exists(productId) AND (attribute_not_exists(photoVersion) OR photoVersion < :v \
                 OR (photoVersion = :v AND attribute_not_exists(thumbKey)))",
            )
            .expression_attribute_values(":photo", s(photo_key))
            .expression_attribute_values(":thumb", s(thumb_key))
            .expression_attribute_values(":v", n(version))
            .send()
            .await;
        Ok(conditional(result, "UpdateItem photo")?.is_some())
    }
}

#[async_trait]
impl ProductStore for DynamoProducts {
    async fn apply_change(
        &self,
        change: &ProductChanged,
    ) -> Result<ApplyOutcome<Product>, DownstreamError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("productId", s(&change.product_id))
            .update_expression(
                "SET priceCents = :price, stock = :stock, version = :version, updatedAt = :at, lastChangeId = :change",
            )
            .condition_expression("attribute_exists(productId) AND (attribute_not_exists(version) OR version < :version)")
            .expression_attribute_values(":price", n(change.current.price_cents))
            .expression_attribute_values(":stock", n(change.current.stock))
            .expression_attribute_values(":version", n(change.version))
            .expression_attribute_values(":at", s(change.changed_at.to_rfc3339()))
            .expression_attribute_values(":change", s(&change.change_id))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match conditional(result, "UpdateItem product")? {
            Some(out) => {
                let item = out.attributes.ok_or_else(|| {
                    DownstreamError::CorruptItem("UpdateItem returned no attributes".into())
                })?;
                Ok(ApplyOutcome::Applied(product_from_item(&item)?))
            }
            None => {
                // Either the product is unknown or the stored version is not older: read it to tell which.
                let item = self
                    .get_item(&change.product_id)
                    .await?
                    .ok_or_else(|| DownstreamError::UnknownProduct(change.product_id.clone()))?;
                let stored = product_from_item(&item)?;
                let stored_change = get_opt_s(&item, "lastChangeId");
                Ok(
                    match classify(
                        change.version,
                        &change.change_id,
                        stored.version,
                        stored_change.as_deref(),
                    ) {
                        Classification::SameChange => ApplyOutcome::Duplicate(stored),
                        // A newer version can only fail the condition if it raced a write; the
                        // next delivery will see the new state, so treat it like a stale one now.
                        Classification::Older | Classification::Newer => ApplyOutcome::Stale {
                            stored_version: stored.version,
                        },
                    },
                )
            }
        }
    }

    async fn all_products(&self) -> Result<Vec<Product>, DownstreamError> {
        self.scan_items()
            .await?
            .iter()
            .map(product_from_item)
            .collect()
    }

    async fn products(
        &self,
        product_ids: &std::collections::BTreeSet<String>,
    ) -> Result<Vec<Product>, DownstreamError> {
        let keys = product_ids
            .iter()
            .map(|id| Item::from([("productId".to_owned(), s(id))]))
            .collect();
        batch_get_all(&self.client, &self.table, keys, "BatchGetItem products")
            .await?
            .iter()
            .map(product_from_item)
            .collect()
    }
}

pub fn product_from_item(item: &Item) -> Result<Product, DownstreamError> {
    Ok(Product {
        product_id: get_s(item, "productId")?,
        name: get_s(item, "name")?,
        category: get_s(item, "category")?,
        price_cents: get_n(item, "priceCents")?,
        currency: get_s(item, "currency")?,
        stock: get_n(item, "stock")?,
        photo_key: get_s(item, "photoKey")?,
        thumb_key: get_opt_s(item, "thumbKey"),
        photo_version: get_n_or(item, "photoVersion", 0)?,
        version: get_n_or(item, "version", 0)?,
        updated_at: get_s(item, "updatedAt")?,
    })
}

fn product_state_from_item(item: &Item) -> Result<ProductState, DownstreamError> {
    let product = product_from_item(item)?;
    Ok(ProductState {
        values: StockAndPrice {
            price_cents: product.price_cents,
            stock: product.stock,
        },
        applied_version: product.version,
        published_version: get_n_or(item, "publishedVersion", 0)?,
        product_id: product.product_id,
    })
}

pub fn product_to_item(p: &Product) -> Item {
    let mut item = Item::from([
        ("productId".to_owned(), s(&p.product_id)),
        ("name".to_owned(), s(&p.name)),
        ("category".to_owned(), s(&p.category)),
        ("priceCents".to_owned(), n(p.price_cents)),
        ("currency".to_owned(), s(&p.currency)),
        ("stock".to_owned(), n(p.stock)),
        ("photoKey".to_owned(), s(&p.photo_key)),
        ("version".to_owned(), n(p.version)),
        ("updatedAt".to_owned(), s(&p.updated_at)),
        ("photoVersion".to_owned(), n(p.photo_version)),
        // Every product is in the catalogue index (see template.yaml's CatalogIndex).
        ("listing".to_owned(), s(LISTING)),
    ]);
    if let Some(thumb) = &p.thumb_key {
        item.insert("thumbKey".to_owned(), s(thumb));
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_round_trips_through_an_item() {
        let p = Product {
            product_id: "p-001".into(),
            name: "Ceramic Mug".into(),
            category: "kitchen".into(),
            price_cents: 1299,
            currency: "EUR".into(),
            stock: 40,
            photo_key: "photos/p-001.png".into(),
            thumb_key: Some("thumbs/p-001/v2.png".into()),
            photo_version: 2,
            version: 3,
            updated_at: "2026-11-23T10:00:00+00:00".into(),
        };
        assert_eq!(product_from_item(&product_to_item(&p)).unwrap(), p);
    }

    #[test]
    fn missing_version_reads_as_zero_and_bad_numbers_are_reported() {
        let p = Product {
            product_id: "p".into(),
            name: "n".into(),
            category: "c".into(),
            price_cents: 1,
            currency: "EUR".into(),
            stock: 1,
            photo_key: "k".into(),
            thumb_key: None,
            photo_version: 0,
            version: 0,
            updated_at: "t".into(),
        };
        let mut item = product_to_item(&p);
        item.remove("version");
        assert_eq!(product_from_item(&item).unwrap().version, 0);
        item.insert("stock".into(), s("lots"));
        assert!(matches!(
            product_from_item(&item),
            Err(DownstreamError::CorruptItem(_))
        ));
    }
}

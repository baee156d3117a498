//! Clients: registered, found, corrected, and erased on request. Every
//! change is audited in its transaction.

use std::sync::Arc;

use prost::Message as _;
use recovery_kit::events::Event;
use recovery_kit::ids::new_id;
use recovery_kit::outbox;
use recovery_kit::time::to_micros;
use recovery_kit::{Caller, Error, Lock, Scope, reason};
use recovery_proto::protocols::v1 as pb;
use recovery_rules::Config;
use sqlx::AnyConnection;

use crate::audit::Action;
use crate::wire::clients::{ClientFields, ClientPatch, ClientSearch, NewClient};
use crate::{CLIENT_ERASED, Listed, Protocols, lists, store};

/// The client `id`, refused with `CLIENT_ERASED` when erased: nothing new
/// is recorded about someone who asked to be forgotten.
pub(crate) async fn live(
    conn: &mut AnyConnection,
    scope: &Scope,
    id: &str,
    lock: Lock,
) -> Result<pb::Client, Error> {
    living(store::clients::find(conn, scope, id, lock).await?)
}

/// [`live`] for reading, with the tenant's thresholds: one statement
/// where the scope is one tenant.
pub(crate) async fn live_with_config(
    conn: &mut AnyConnection,
    scope: &Scope,
    id: &str,
) -> Result<(pb::Client, Config), Error> {
    let Some(tenant) = scope.tenant() else {
        let client = live(conn, scope, id, Lock::Read).await?;
        return Ok((client, store::rules::config(conn, scope).await?));
    };
    let (client, config) = store::rules::client_and_config(conn, tenant, id).await?;
    Ok((living(client)?, config))
}

pub(crate) fn living(client: pb::Client) -> Result<pb::Client, Error> {
    if client.erase_time.is_some() {
        return Err(Error::precondition(
            reason::CLIENT_ERASED,
            format!(
                "client {} was erased on request; nothing more is recorded about them",
                client.id
            ),
        ));
    }
    Ok(client)
}

impl Protocols {
    /// `CreateClient`: once per `request_id`.
    pub(crate) async fn register_client(
        &self,
        caller: &Caller,
        scope: &Scope,
        new: NewClient,
    ) -> Result<pb::Client, Error> {
        let change = self.change(caller, scope);
        let key = new.key.as_ref();
        let (client, fresh) = self
            .create_once(change, key, &new.fields, |tx, (change, fields)| {
                Box::pin(async move {
                    let id = new_id();
                    store::clients::insert(tx, change, &id, fields).await?;
                    let detail = format!("{fields:?}");
                    change
                        .audit(tx, Some(&id), Action::ClientCreated, detail)
                        .await?;
                    store::clients::find(tx, change.scope, &id, Lock::Read).await
                })
            })
            .await?;
        if fresh {
            tracing::info!(client_id = %client.id, "client created");
        }
        Ok(client)
    }

    /// `GetClient`: erased clients too, with their personal fields empty.
    pub(crate) async fn client(&self, scope: &Scope, id: &str) -> Result<pb::Client, Error> {
        let mut conn = store::reader(&self.db).await?;
        store::clients::find(&mut conn, scope, id, Lock::Read).await
    }

    /// `ListClients`: the clients not erased, by id.
    pub(crate) async fn clients(
        &self,
        scope: &Scope,
        search: ClientSearch,
    ) -> Result<Listed<pb::Client>, Error> {
        // The version first: a page read after it is at least as new.
        let read = || async {
            let mut counters = self.db.counter().await?;
            store::clients::list_version(&mut counters, scope).await
        };
        let version = self.kept.client_versions.read(scope, read).await?;
        let key = (scope.clone(), search);
        if let Some(page) = self.kept.clients.get(&key, version) {
            return Ok(Listed::clone(&page));
        }
        let search = &key.1;
        let mut conn = store::reader(&self.db).await?;
        let mut clients =
            store::clients::list(&mut conn, scope, &search.text, &search.page).await?;
        drop(conn);
        let next_page_token = search.page.finish(&mut clients, |c| &c.id);
        let page = Listed {
            items: clients,
            next_page_token,
        };
        self.kept
            .clients
            .put_weighed(key, version, Arc::new(page.clone()), lists::weight(&page));
        Ok(page)
    }

    /// `UpdateClient`: the named fields of a client not erased.
    pub(crate) async fn change_client(
        &self,
        caller: &Caller,
        scope: &Scope,
        patch: ClientPatch,
    ) -> Result<pb::Client, Error> {
        let change = self.change(caller, scope);
        let id = patch.id.as_str();
        let mut tx = self.db.begin().await?;
        let current = live(&mut tx, scope, id, Lock::ForUpdate).await?;
        let mut fields = ClientFields::stored(current);
        patch.apply_to(&mut fields);
        store::clients::update(&mut tx, &change, id, &fields).await?;
        let detail = format!("fields {}: {fields:?}", patch.paths.join(", "));
        change
            .audit(&mut tx, Some(id), Action::ClientUpdated, detail)
            .await?;
        let client = store::clients::find(&mut tx, scope, id, Lock::Read).await?;
        tx.commit().await?;
        tracing::info!(client_id = %id, fields = ?patch.paths, "client updated");
        Ok(client)
    }

    /// `DeleteClient`: erases the client's personal data (see
    /// `store::clients::erase`) and, in the same transaction, writes the
    /// `CLIENT_ERASED` event to the outbox, whose relay tells other services
    /// after commit; erasing twice answers the same and writes no event.
    pub(crate) async fn erase_client(
        &self,
        caller: &Caller,
        scope: &Scope,
        id: &str,
    ) -> Result<pb::Client, Error> {
        let change = self.change(caller, scope);
        let mut tx = self.db.begin().await?;
        let current = store::clients::find(&mut tx, scope, id, Lock::ForUpdate).await?;
        if current.erase_time.is_some() {
            return Ok(current);
        }
        store::clients::erase(&mut tx, &change, id).await?;
        let client = store::clients::find(&mut tx, scope, id, Lock::Read).await?;
        let event = Event::new(
            CLIENT_ERASED,
            store::owner(scope)?,
            id,
            client.encode_to_vec(),
        );
        outbox::record(&mut tx, self.outbox.table(), &event, to_micros(change.now)).await?;
        change
            .audit(&mut tx, Some(id), Action::ClientErased, String::new())
            .await?;
        tx.commit().await?;
        self.outbox.wake();
        tracing::info!(client_id = %id, event_id = %event.id, "client erased");
        Ok(client)
    }
}

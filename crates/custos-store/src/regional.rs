//! [`Stores`]: the router over the main stores and the stores of every region that has its own
//! (`[regions.<name>]` in the policy), so that an org's rows, files and archive live only in
//! its home region's stores.
//!
//! Each region store is a whole Custos store, audit log included: an org's mutations commit
//! with their audit events in its region's database, as everywhere else. The router hands back
//! the org's store ([`Stores::for_org`]) and callers call it directly; it implements no
//! [`Store`] method itself. What it does answer are the questions that must ask every store:
//! lookups by org id, key hash or session token, due work and deadlines, listings of orgs, the
//! audit events of no org, and moving an org between regions ([`Stores::set_org_region`]).
//! The deployment-wide audit log is the main store's ([`Stores::main`]); [`Stores::regions`]
//! hands out each region's own.
//!
//! What it is not: a replicator. Nothing is copied between regions except by a move, which
//! the core only asks for when the org allows data transfer.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use custos_audit::AuditEvent;
use jiff::Timestamp;

use crate::{
    AuditEntry, AuditFilter, DueCursor, DueRecord, Member, Objects, Org, OrgRows, OrgScope,
    PendingRecompute, RequestStatus, Session, Store, StoreError, SubjectRequest,
};

/// How long an instance trusts what it found out about an org's home region before asking
/// the stores again: the longest a request can still reach the old region's store after
/// another instance moved the org (where the org no longer exists, so it fails rather than
/// writes there).
pub const HOME_RECHECK: Duration = Duration::from_secs(1);

/// A region with stores of its own.
#[derive(Clone)]
pub struct RegionStores {
    /// The region's name (a `service.regions` entry).
    pub name: String,
    /// Its database (with its own audit log).
    pub store: Arc<dyn Store>,
    /// Its object store.
    pub objects: Objects,
}

impl std::fmt::Debug for RegionStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionStores")
            .field("name", &self.name)
            .field("store", &self.store.backend())
            .field("objects", &self.objects)
            .finish()
    }
}

/// Where an org lives: `None` the main stores, `Some(i)` the `i`th region with its own.
type Home = Option<usize>;

/// The main stores plus each region's own, routing by the org's home region.
pub struct Stores {
    main: Arc<dyn Store>,
    main_objects: Objects,
    regions: Vec<RegionStores>,
    homes: RwLock<HashMap<String, (Home, Instant)>>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("main", &self.main.backend())
            .field("regions", &self.regions)
            .finish_non_exhaustive()
    }
}

impl Stores {
    /// The main stores (orgs of regions without stores of their own) and the regions with.
    pub fn new(main: Arc<dyn Store>, main_objects: Objects, regions: Vec<RegionStores>) -> Self {
        Stores {
            main,
            main_objects,
            regions,
            homes: RwLock::new(HashMap::new()),
        }
    }

    /// One store and object store for every org (no region has stores of its own).
    pub fn single(store: Arc<dyn Store>, objects: Objects) -> Self {
        Stores::new(store, objects, Vec::new())
    }

    /// The main store: the orgs of regions without stores of their own, and the
    /// deployment-wide audit log.
    pub fn main(&self) -> &Arc<dyn Store> {
        &self.main
    }

    /// The main object store.
    pub fn main_objects(&self) -> &Objects {
        &self.main_objects
    }

    /// The regions with stores (and an audit log) of their own.
    pub fn regions(&self) -> &[RegionStores] {
        &self.regions
    }

    /// The backend of the main store (`sqlite`, `postgres`).
    pub fn backend(&self) -> &'static str {
        self.main.backend()
    }

    /// The store that holds the org of `scope`: its home region's, else the main one.
    pub async fn for_org(&self, scope: &OrgScope) -> Result<&Arc<dyn Store>, StoreError> {
        Ok(self.store_at(self.locate(scope.org_id()).await?))
    }

    /// The object store of the org's home region.
    pub async fn objects_for(&self, scope: &OrgScope) -> Result<&Objects, StoreError> {
        Ok(self.objects_at(self.locate(scope.org_id()).await?))
    }

    /// The org's home region, when that region has stores of its own.
    pub async fn region_of(&self, scope: &OrgScope) -> Result<Option<&RegionStores>, StoreError> {
        Ok(self.locate(scope.org_id()).await?.map(|i| &self.regions[i]))
    }

    fn store_at(&self, home: Home) -> &Arc<dyn Store> {
        match home {
            Some(i) => &self.regions[i].store,
            None => &self.main,
        }
    }

    fn objects_at(&self, home: Home) -> &Objects {
        match home {
            Some(i) => &self.regions[i].objects,
            None => &self.main_objects,
        }
    }

    /// Where orgs of `region` live.
    fn home_of_region(&self, region: &str) -> Home {
        self.regions.iter().position(|r| r.name == region)
    }

    fn remember(&self, org_id: &str, home: Home) {
        let mut homes = self.homes.write().unwrap_or_else(|e| e.into_inner());
        homes.insert(org_id.to_string(), (home, Instant::now()));
    }

    /// Which store holds the org: known within [`HOME_RECHECK`], else asked. The store whose
    /// copy names a region that lives on it holds the org; a copy naming a region elsewhere is
    /// a move in progress (see [`Stores::move_between`]) and counts only when no store
    /// holds the org otherwise. An org no store has is looked for on the main store (and not
    /// found there).
    async fn locate(&self, org_id: &str) -> Result<Home, StoreError> {
        {
            let homes = self.homes.read().unwrap_or_else(|e| e.into_inner());
            if let Some((home, seen)) = homes.get(org_id) {
                if seen.elapsed() < HOME_RECHECK {
                    return Ok(*home);
                }
            }
        }
        let mut copy = None;
        let mut home = None;
        for (at, store) in self.all() {
            if let Some((_, org)) = store.org(org_id).await? {
                if self.home_of_region(&org.region) == at {
                    home = Some(at);
                    break;
                }
                copy = Some(at);
            }
        }
        match home.or(copy) {
            Some(home) => {
                self.remember(org_id, home);
                Ok(home)
            }
            // Not remembered: a caller naming random org ids must not grow the map.
            None => Ok(None),
        }
    }

    /// Every store, main first.
    fn all(&self) -> impl Iterator<Item = (Home, &Arc<dyn Store>)> {
        std::iter::once((None, &self.main)).chain(
            self.regions
                .iter()
                .enumerate()
                .map(|(i, r)| (Some(i), &r.store)),
        )
    }

    fn forget(&self, org_id: &str) {
        let mut homes = self.homes.write().unwrap_or_else(|e| e.into_inner());
        homes.remove(org_id);
    }

    /// Moves the org to `region` while holding the deployment's one claim on moving it (on
    /// the main store, which every instance shares): a second move of the same org, here or
    /// on another instance, gets [`StoreError::MoveInProgress`] until this one ends.
    async fn move_org(
        &self,
        scope: &OrgScope,
        region: &str,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let org = scope.org_id();
        let claim = MoveClaim {
            holder: uuid::Uuid::new_v4().to_string(),
            main: &self.main,
            org,
        };
        claim.renew().await?;
        let moved = self.move_claimed(scope, region, audit, &claim).await;
        if let Err(e) = self.main.release_org_move(org, &claim.holder).await {
            // The lease ends by itself; the move's own outcome is what the caller needs.
            tracing::warn!(org, error = %e, "could not release the claim on an org move");
        }
        moved
    }

    async fn move_claimed(
        &self,
        scope: &OrgScope,
        region: &str,
        audit: &[AuditEvent],
        claim: &MoveClaim<'_>,
    ) -> Result<(), StoreError> {
        // Where the org is now, not where this instance last saw it: another instance may
        // have moved it since.
        self.forget(scope.org_id());
        let from = self.locate(scope.org_id()).await?;
        let to = self.home_of_region(region);
        if from != to {
            return self
                .move_between(scope, from, to, region, audit, claim)
                .await;
        }
        // Same stores: the region changes in place. This also finishes a move interrupted
        // after its copy was made the org: objects it left in the old region go.
        let before = self.store_at(from).org(scope.org_id()).await?;
        self.store_at(from)
            .set_org_region(scope, region, audit)
            .await?;
        if let Some((_, old)) = before {
            let old_home = self.home_of_region(&old.region);
            if old_home != to {
                let objects = self.objects_at(old_home);
                for key in objects.list(&format!("orgs/{}", scope.org_id())).await? {
                    objects.delete(&key).await?;
                }
            }
        }
        self.remember(scope.org_id(), to);
        Ok(())
    }

    /// Copies the org's rows and objects to the stores of `to`, drops the rows from `from` if
    /// nothing was written there since the copy (else copies again, up to [`MOVE_TRIES`]
    /// times), deletes the old objects, then makes `region` the copy's home. Until that last
    /// step the copy still names the old region, so [`Stores::locate`] keeps finding
    /// the org at `from`; a move interrupted at any step finishes when asked again (the copy
    /// is replaced, the objects copied again, and once `from` is empty the copy is the org
    /// and the region changes in place).
    async fn move_between(
        &self,
        scope: &OrgScope,
        from: Home,
        to: Home,
        region: &str,
        audit: &[AuditEvent],
        claim: &MoveClaim<'_>,
    ) -> Result<(), StoreError> {
        let (source, target) = (self.store_at(from), self.store_at(to));
        let (source_objects, target_objects) = (self.objects_at(from), self.objects_at(to));
        let prefix = format!("orgs/{}", scope.org_id());
        let mut tries = 0;
        let keys = loop {
            tries += 1;
            let rows = source.export_org(scope).await?;
            let old_region = region_of_rows(&rows)?;
            target.import_org(&rows, &old_region, &[]).await?;
            let keys = source_objects.list(&prefix).await?;
            for (i, key) in keys.iter().enumerate() {
                if i % 64 == 63 {
                    claim.renew().await?;
                }
                source_objects.copy_into(target_objects, key).await?;
            }
            claim.renew().await?;
            match source.drop_org(scope, Some(&rows), audit).await {
                Ok(()) => break keys,
                Err(StoreError::Conflict(_)) if tries < MOVE_TRIES => continue,
                Err(e) => {
                    // The org stays whole where it was: take the partial copy back out.
                    target.drop_org(scope, None, &[]).await?;
                    for key in &keys {
                        target_objects.delete(key).await?;
                    }
                    return Err(match e {
                        StoreError::Conflict(_) => StoreError::Conflict(format!(
                            "the org was written to during each of {MOVE_TRIES} tries to move \
                             it; nothing moved, try again"
                        )),
                        other => other,
                    });
                }
            }
        };
        for key in &keys {
            source_objects.delete(key).await?;
        }
        target.set_org_region(scope, region, audit).await?;
        self.remember(scope.org_id(), to);
        Ok(())
    }
}

/// How often a move copies an org written to while it is copied before it gives up.
const MOVE_TRIES: u32 = 3;
/// How long a claim on moving an org lasts unless renewed (a crashed mover's claim ends by
/// itself, so the move can be asked again).
const MOVE_LEASE: Duration = Duration::from_secs(60);

/// One mover's claim on moving one org.
struct MoveClaim<'a> {
    holder: String,
    main: &'a Arc<dyn Store>,
    org: &'a str,
}

impl MoveClaim<'_> {
    /// Takes or extends the claim; [`StoreError::MoveInProgress`] if another mover has it.
    async fn renew(&self) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let until = now
            .checked_add(MOVE_LEASE)
            .map_err(|e| StoreError::Config(format!("move lease: {e}")))?;
        if self
            .main
            .claim_org_move(self.org, &self.holder, now, until)
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::MoveInProgress(format!(
                "org {} is being moved by another request",
                self.org
            )))
        }
    }
}

/// The region the org's row names in a copy of its rows.
fn region_of_rows(rows: &OrgRows) -> Result<String, StoreError> {
    rows.tables
        .iter()
        .find(|t| t.table == "orgs")
        .and_then(|t| {
            let at = t.columns.iter().position(|c| c == "region")?;
            match t.rows.first()?.get(at)? {
                crate::Cell::Text(r) => Some(r.clone()),
                _ => None,
            }
        })
        .ok_or_else(|| StoreError::Corrupt("the org's row names no region".into()))
}

/// The questions that ask every store (or route by what they carry), answered as one.
impl Stores {
    /// Creates the org in its region's home store.
    pub async fn create_org(
        &self,
        org: &Org,
        audit: &[AuditEvent],
    ) -> Result<OrgScope, StoreError> {
        let home = self.home_of_region(&org.region);
        let scope = self.store_at(home).create_org(org, audit).await?;
        self.remember(&org.id, home);
        Ok(scope)
    }

    /// The org `id`, wherever it lives.
    pub async fn org(&self, id: &str) -> Result<Option<(OrgScope, Org)>, StoreError> {
        let home = self.locate(id).await?;
        if let Some(found) = self.store_at(home).org(id).await? {
            return Ok(Some(found));
        }
        // Moved away since this instance last looked (by another instance): look again, so
        // the request goes on in the org's new home instead of failing in its old one.
        self.forget(id);
        match self.locate(id).await? {
            again if again != home => self.store_at(again).org(id).await,
            _ => Ok(None),
        }
    }

    /// Every store's orgs, oldest first (an org in the middle of a move may appear twice).
    pub async fn orgs(&self) -> Result<Vec<Org>, StoreError> {
        let mut all = Vec::new();
        for (_, store) in self.all() {
            all.extend(store.orgs().await?);
        }
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    /// The member whose API key hashes to `key_hash`, in whichever store holds it.
    pub async fn member_by_key_hash(
        &self,
        key_hash: &[u8; 32],
    ) -> Result<Option<(OrgScope, Member)>, StoreError> {
        for (home, store) in self.all() {
            if let Some(found) = store.member_by_key_hash(key_hash).await? {
                self.remember(found.0.org_id(), home);
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The personal access token of `token_hash`, in whichever store holds it.
    pub async fn personal_token(
        &self,
        token_hash: &[u8; 32],
        now: Timestamp,
    ) -> Result<Option<(OrgScope, Member, crate::PersonalToken)>, StoreError> {
        for (home, store) in self.all() {
            if let Some(found) = store.personal_token(token_hash, now).await? {
                self.remember(found.0.org_id(), home);
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The session of `token_hash`, in whichever store holds it.
    pub async fn session(
        &self,
        token_hash: &[u8; 32],
        now: Timestamp,
    ) -> Result<Option<(OrgScope, Member, Session)>, StoreError> {
        for (home, store) in self.all() {
            if let Some(found) = store.session(token_hash, now).await? {
                self.remember(found.0.org_id(), home);
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Claims up to `limit` due records, asking each store in turn.
    pub async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<DueRecord>, StoreError> {
        let mut claimed = Vec::new();
        for (_, store) in self.all() {
            let left = limit.saturating_sub(claimed.len() as u32);
            if left == 0 {
                break;
            }
            claimed.extend(store.claim_due(now, lease_until, left).await?);
        }
        Ok(claimed)
    }

    /// Due records of every store, in due order, without claiming them.
    pub async fn peek_due(
        &self,
        as_of: Timestamp,
        after: Option<&DueCursor>,
        limit: u32,
    ) -> Result<Vec<DueRecord>, StoreError> {
        let mut all = Vec::new();
        for (_, store) in self.all() {
            all.extend(store.peek_due(as_of, after, limit).await?);
        }
        // The order each store lists in: due time, then org, then id.
        all.sort_by(|a, b| {
            let (a, b) = (a.cursor(), b.cursor());
            (a.due_at, a.org, a.id).cmp(&(b.due_at, b.org, b.id))
        });
        all.truncate(limit as usize);
        Ok(all)
    }

    /// Forgets deleted orgs' leftovers in every store.
    pub async fn forget_deleted(&self) -> Result<(), StoreError> {
        for (_, store) in self.all() {
            store.forget_deleted().await?;
        }
        Ok(())
    }

    /// Every store's queued due-time recomputations.
    pub async fn pending_recomputes(&self) -> Result<Vec<PendingRecompute>, StoreError> {
        let mut all = Vec::new();
        for (_, store) in self.all() {
            all.extend(store.pending_recomputes().await?);
        }
        Ok(all)
    }

    /// Deletes every store's used privacy-center links that expired at or before `before`,
    /// each store's deletion audited in its own log with `audit()`; how many.
    pub async fn purge_privacy_link_uses(
        &self,
        before: Timestamp,
        audit: impl Fn() -> Vec<AuditEvent>,
    ) -> Result<u64, StoreError> {
        let mut n = 0;
        for (_, store) in self.all() {
            n += store.purge_privacy_link_uses(before, &audit()).await?;
        }
        Ok(n)
    }

    /// Requests of every store in `statuses` due from `due_from` (if given) to `due_by`,
    /// soonest first.
    pub async fn requests_by_status(
        &self,
        statuses: &[RequestStatus],
        due_from: Option<Timestamp>,
        due_by: Timestamp,
        limit: u32,
    ) -> Result<Vec<(OrgScope, SubjectRequest)>, StoreError> {
        let mut all = Vec::new();
        for (_, store) in self.all() {
            all.extend(
                store
                    .requests_by_status(statuses, due_from, due_by, limit)
                    .await?,
            );
        }
        all.sort_by(|a, b| (a.1.due_at, &a.1.id).cmp(&(b.1.due_at, &b.1.id)));
        all.truncate(limit as usize);
        Ok(all)
    }

    /// Appends events that commit with no other change: each to the log of its org's home
    /// (events of no org to the main log); runs of one home stay one append.
    pub async fn append_audit(&self, audit: &[AuditEvent]) -> Result<(), StoreError> {
        let mut run: Vec<AuditEvent> = Vec::new();
        let mut run_home: Home = None;
        for event in audit {
            let home = match &event.org {
                Some(org) => self.locate(org).await?,
                None => None,
            };
            if home != run_home && !run.is_empty() {
                self.store_at(run_home).append_audit(&run).await?;
                run.clear();
            }
            run_home = home;
            run.push(event.clone());
        }
        if !run.is_empty() {
            self.store_at(run_home).append_audit(&run).await?;
        }
        Ok(())
    }

    /// Audit entries of the org's log (its home's), or of the main log.
    pub async fn audit_entries(
        &self,
        scope: Option<&OrgScope>,
        from: u64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        match scope {
            Some(s) => {
                self.for_org(s)
                    .await?
                    .audit_entries(scope, from, limit)
                    .await
            }
            None => self.main.audit_entries(None, from, limit).await,
        }
    }

    /// Filtered audit entries of the org's log (its home's), or of the main log.
    pub async fn audit_query(
        &self,
        scope: Option<&OrgScope>,
        filter: &AuditFilter,
        from: u64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        match scope {
            Some(s) => {
                let store = self.for_org(s).await?;
                store.audit_query(scope, filter, from, limit).await
            }
            None => self.main.audit_query(None, filter, from, limit).await,
        }
    }

    /// Makes `region` the org's home: in place when both regions share stores, else a move of
    /// its rows and objects (see [`Stores::move_between`]), one at a time per org.
    pub async fn set_org_region(
        &self,
        scope: &OrgScope,
        region: &str,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        self.move_org(scope, region, audit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ObjectLocation, SqliteStore};

    #[tokio::test]
    async fn unknown_org_ids_are_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| -> (Arc<dyn Store>, Objects) {
            let store = SqliteStore::open(&dir.path().join(name).join("custos.db")).unwrap();
            let location = ObjectLocation::File(dir.path().join(name).join("objects"));
            (Arc::new(store), Objects::open(&location).unwrap())
        };
        let (main, main_objects) = open("main");
        let (eu, eu_objects) = open("eu");
        let regional = Stores::new(
            main,
            main_objects,
            vec![RegionStores {
                name: "eu-central".into(),
                store: eu,
                objects: eu_objects,
            }],
        );
        for i in 0..100 {
            assert!(regional
                .org(&format!("no-such-org-{i}"))
                .await
                .unwrap()
                .is_none());
        }
        let homes = regional.homes.read().unwrap();
        assert!(homes.is_empty(), "{} unknown ids remembered", homes.len());
    }
}

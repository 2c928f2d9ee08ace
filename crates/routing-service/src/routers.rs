//! [`Routers`]: the routers of every partition a process runs, and which of
//! them answers a request.
//!
//! A process runs a router for each partition of the routing configuration;
//! each is active or standing by on its own. Agents' requests go to the
//! router of the agent's partition (from their profile); requests about a
//! contact go to whichever active router holds it; the live view joins the
//! partitions active here. A request for a partition this process stands by
//! for is `NotActive`, so the caller tries the process that routes it.

use std::collections::BTreeMap;
use std::sync::Arc;

use switchboard_routing::ContactId;
use switchboard_routing::config::DEFAULT_PARTITION;
use uuid::Uuid;

use crate::error::{RouterError, RouterResult};
use crate::journal::StoredProfile;
use crate::router::{ContactView, LiveView, Router, StoredExplanation};
use crate::store::RoutingStore;

pub struct Routers {
    /// By partition name.
    routers: BTreeMap<String, Arc<Router>>,
    /// The store every partition shares (agents' profiles live here).
    store: Arc<dyn RoutingStore>,
}

impl Routers {
    /// `routers` must not be empty, and each must have its own partition.
    pub fn new(routers: Vec<Arc<Router>>, store: Arc<dyn RoutingStore>) -> Routers {
        debug_assert!(
            !routers.is_empty(),
            "a routing process runs at least one partition"
        );
        Routers {
            routers: routers
                .into_iter()
                .map(|router| (router.partition().to_owned(), router))
                .collect(),
            store,
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Router>> {
        self.routers.values()
    }

    /// Whether this process routes any partition now.
    pub fn any_active(&self) -> bool {
        self.routers.values().any(|router| router.is_active())
    }

    fn partition(&self, partition: &str) -> RouterResult<&Arc<Router>> {
        self.routers.get(partition).ok_or_else(|| RouterError::NotActive {
            partition: partition.to_owned(),
        })
    }

    /// Any router: they share the store and the configuration.
    fn first(&self) -> RouterResult<&Arc<Router>> {
        self.routers
            .get(DEFAULT_PARTITION)
            .or_else(|| self.routers.values().next())
            .ok_or_else(|| RouterError::NotActive {
                partition: DEFAULT_PARTITION.to_owned(),
            })
    }

    /// The router of the agent's partition. An agent without a profile goes
    /// to the default partition, which tells them they need one.
    pub async fn for_agent(&self, subject: &str) -> RouterResult<&Arc<Router>> {
        let partition = match self.store.agent_by_subject(subject).await? {
            Some(agent) => serde_json::from_str::<StoredProfile>(&agent.profile)
                .map_err(|error| RouterError::Corrupt {
                    column: "agents.profile",
                    reason: error.to_string(),
                })?
                .partition()
                .to_owned(),
            None => DEFAULT_PARTITION.to_owned(),
        };
        self.partition(&partition)
    }

    /// The active router that holds the contact.
    pub async fn for_contact(&self, contact: ContactId) -> RouterResult<(&Arc<Router>, ContactView)> {
        let mut standing_by = None;
        for router in self.routers.values() {
            match router.contact(contact).await {
                Ok(view) => return Ok((router, view)),
                Err(RouterError::NotFound { .. }) => {}
                Err(RouterError::NotActive { partition }) => standing_by = Some(partition),
                Err(error) => return Err(error),
            }
        }
        // Not here: perhaps in a partition another process routes.
        Err(match standing_by {
            Some(partition) => RouterError::NotActive { partition },
            None => RouterError::NotFound {
                what: "contact",
                id: Uuid::from_u128(contact.0).to_string(),
            },
        })
    }

    /// The live view of every partition active here.
    pub async fn live(&self) -> RouterResult<LiveView> {
        let mut joined: Option<LiveView> = None;
        for router in self.routers.values() {
            let view = match router.live().await {
                Ok(view) => view,
                Err(RouterError::NotActive { .. }) => continue,
                Err(error) => return Err(error),
            };
            match &mut joined {
                None => joined = Some(view),
                Some(joined) => {
                    joined.partitions.extend(view.partitions);
                    joined.queues.extend(view.queues);
                    joined.agents.extend(view.agents);
                    joined.contacts.extend(view.contacts);
                }
            }
        }
        joined.ok_or_else(|| RouterError::NotActive {
            partition: self.routers.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// Why a contact went where it went: from the router holding it, or,
    /// once routing is over, from the stored explanation alone.
    pub async fn explain(
        &self,
        contact: ContactId,
    ) -> RouterResult<(Option<ContactView>, Option<StoredExplanation>)> {
        match self.for_contact(contact).await {
            Ok((router, _)) => router.explain(contact).await,
            Err(RouterError::NotFound { .. } | RouterError::NotActive { .. }) => {
                self.first()?.explain(contact).await
            }
            Err(error) => Err(error),
        }
    }

    /// Stores a profile (checked against the configuration) and hands it to
    /// the router of the agent's partition.
    pub async fn put_profile(&self, subject: &str, profile: &StoredProfile) -> RouterResult<()> {
        let router = self.routers.get(profile.partition()).unwrap_or(self.first()?);
        router.put_profile(subject, profile).await
    }

    pub async fn profiles(&self) -> RouterResult<Vec<(String, StoredProfile)>> {
        self.first()?.profiles().await
    }

    pub async fn config_toml(&self) -> RouterResult<String> {
        Ok(self.first()?.config_toml().await)
    }

    /// Validates a new configuration, stores it, and applies it to every
    /// partition this process routes. Partitions other processes route
    /// follow the stored configuration within seconds; a partition that is
    /// routing contacts while the change adds, removes or moves queues takes
    /// it at its next quiet moment.
    pub async fn reconfigure(&self, toml: &str) -> RouterResult<String> {
        self.first()?.validate_config(toml).await?;
        let version = self.store.put_config(toml).await?;
        for router in self.routers.values() {
            if let Err(error) = router.follow_stored_config().await {
                match error {
                    RouterError::FailedPrecondition(_) => {}
                    other => return Err(other),
                }
            }
        }
        tracing::info!(version, "routing configuration stored");
        Ok(toml.to_owned())
    }
}

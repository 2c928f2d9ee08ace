//! `AgentService`, `SupervisorService` and `QueueService` over a [`Router`].
//!
//! The agent is always the caller: their token's subject names them, so an
//! agent can only act for themselves; supervisors name the agent. Requests
//! become router inputs here, with a malformed field answered
//! `INVALID_ARGUMENT` naming it. A router standing by answers `UNAVAILABLE`
//! so clients try the active one.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use switchboard_proto::v1;
use switchboard_proto::v1::agent_service_server::{AgentService, AgentServiceServer};
use switchboard_proto::v1::queue_service_server::{QueueService, QueueServiceServer};
use switchboard_proto::v1::supervisor_service_server::{SupervisorService, SupervisorServiceServer};
use switchboard_routing::config::ServiceLevelTarget;
use switchboard_routing::{ContactId, ContactStage, Disposition, Presence};
use switchboard_runtime::Principal;
use switchboard_runtime::status;
use switchboard_runtime::wire::{channel_from_proto, channel_to_proto, needs_to_proto, timestamp};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::RouterError;
use crate::journal::StoredProfile;
use crate::router::{AgentAction, AgentUpdate, AgentView, ContactView, LiveView, ResidentAction, TransferTo};
use crate::routers::Routers;

/// The three routing services over the routers of a process.
#[derive(Clone)]
pub struct RoutingGrpc {
    routers: Arc<Routers>,
}

impl std::fmt::Debug for RoutingGrpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutingGrpc").finish_non_exhaustive()
    }
}

impl RoutingGrpc {
    pub fn new(routers: Arc<Routers>) -> Self {
        RoutingGrpc { routers }
    }

    pub fn agent_server(&self) -> AgentServiceServer<RoutingGrpc> {
        AgentServiceServer::new(self.clone())
    }

    pub fn supervisor_server(&self) -> SupervisorServiceServer<RoutingGrpc> {
        SupervisorServiceServer::new(self.clone())
    }

    pub fn queue_server(&self) -> QueueServiceServer<RoutingGrpc> {
        QueueServiceServer::new(self.clone())
    }

    /// What a channel reports of a waiting resident, to the router holding
    /// the contact.
    async fn resident(
        &self,
        request: &Request<v1::ContactRequest>,
        action: ResidentAction,
    ) -> Result<Response<v1::QueuePosition>, Status> {
        let contact = contact_id("contact_id", &request.get_ref().contact_id)?;
        let (router, _) = self
            .routers
            .for_contact(contact)
            .await
            .map_err(|error| router_status(&error))?;
        let view = router
            .resident_action(contact, action)
            .await
            .map_err(|error| router_status(&error))?;
        Ok(Response::new(queue_position(&view)))
    }

    async fn act<T>(
        &self,
        request: &Request<T>,
        action: AgentAction,
    ) -> Result<Response<v1::AgentState>, Status> {
        let caller = Principal::require(request)?;
        let view = self
            .routers
            .for_agent(&caller.subject)
            .await
            .map_err(|error| router_status(&error))?
            .agent_action(&caller.subject, action)
            .await
            .map_err(|error| router_status(&error))?;
        Ok(Response::new(agent_state(&view)))
    }
}

/// Maps router errors to what the caller can do about them.
fn router_status(error: &RouterError) -> Status {
    match error {
        RouterError::NotActive { .. } | RouterError::Fenced { .. } => {
            Status::unavailable("this routing process is standing by; retry, or use the active one")
        }
        RouterError::NotFound { what, id } => Status::not_found(format!("{what} {id} is not being routed")),
        RouterError::InvalidArgument { field, reason } => status::invalid_field(field, reason),
        RouterError::Config(error) => status::invalid_field("toml", &error.to_string()),
        RouterError::FailedPrecondition(reason) => Status::failed_precondition(reason.clone()),
        RouterError::Routing(error) => Status::failed_precondition(error.to_string()),
        error if error.is_transient() => status::unavailable(error),
        error => status::internal(error),
    }
}

fn contact_id(field: &str, value: &str) -> Result<ContactId, Status> {
    Uuid::parse_str(value)
        .map(|uuid| ContactId(uuid.as_u128()))
        .map_err(|_| status::invalid_field(field, "must be a contact id (a UUID)"))
}

fn presence_from_proto(field: &str, value: i32) -> Result<Presence, Status> {
    match v1::Presence::try_from(value) {
        Ok(v1::Presence::Available) => Ok(Presence::Available),
        Ok(v1::Presence::Break) => Ok(Presence::Break),
        Ok(v1::Presence::Busy) => Ok(Presence::Busy),
        Ok(v1::Presence::Offline) => Ok(Presence::Offline),
        Ok(v1::Presence::WrapUp | v1::Presence::Missed) => Err(status::invalid_field(
            field,
            "wrap-up and missed are set by routing; choose available, break, busy or offline",
        )),
        _ => Err(status::invalid_field(
            field,
            "must be available, break, busy or offline",
        )),
    }
}

fn presence_to_proto(presence: Presence) -> v1::Presence {
    match presence {
        Presence::Offline => v1::Presence::Offline,
        Presence::Available => v1::Presence::Available,
        Presence::Break => v1::Presence::Break,
        Presence::Busy => v1::Presence::Busy,
        Presence::WrapUp => v1::Presence::WrapUp,
        Presence::Missed => v1::Presence::Missed,
    }
}

fn transfer_target(to: Option<&v1::transfer_contact_request::To>) -> Result<TransferTo, Status> {
    match to {
        Some(v1::transfer_contact_request::To::Queue(queue)) if !queue.trim().is_empty() => {
            Ok(TransferTo::Queue(queue.trim().to_owned()))
        }
        Some(v1::transfer_contact_request::To::Agent(agent)) if !agent.trim().is_empty() => {
            Ok(TransferTo::Agent(agent.trim().to_owned()))
        }
        _ => Err(status::invalid_field("to", "name a queue or an agent")),
    }
}

fn agent_state(view: &AgentView) -> v1::AgentState {
    v1::AgentState {
        agent: view.subject.clone(),
        presence: presence_to_proto(view.presence) as i32,
        team: view.team.clone(),
        contact_ids: view
            .contacts
            .iter()
            .map(|contact| Uuid::from_u128(contact.0).to_string())
            .collect(),
        missed_offers: view.missed_offers,
        idle_since: view.idle_since.map(timestamp),
    }
}

fn stage_name(stage: Option<ContactStage>) -> String {
    stage.map_or("finished", ContactStage::as_str).to_owned()
}

fn live_contact(view: &ContactView) -> v1::LiveContact {
    v1::LiveContact {
        contact_id: Uuid::from_u128(view.info.contact.0).to_string(),
        reference: view.info.reference.clone(),
        service: view.info.service.clone(),
        channel: channel_to_proto(view.info.channel) as i32,
        queue: if view.queue.is_empty() {
            view.info.queue.clone().unwrap_or_default()
        } else {
            view.queue.clone()
        },
        stage: stage_name(view.stage),
        position: view.position,
        estimated_wait_seconds: view
            .estimated_wait_seconds
            .map(|seconds| u32::try_from(seconds).unwrap_or(u32::MAX)),
        agent: view.agent.clone().unwrap_or_default(),
        needs: Some(needs_to_proto(&view.info.needs)),
        case_reference: view.info.case_reference.clone().unwrap_or_default(),
        case_contact_count: view.info.case_contact_count,
        received_at: Some(timestamp(view.info.received_at)),
    }
}

fn queue_position(view: &ContactView) -> v1::QueuePosition {
    v1::QueuePosition {
        contact_id: Uuid::from_u128(view.info.contact.0).to_string(),
        queue: live_contact(view).queue,
        stage: stage_name(view.stage),
        position: view.position,
        estimated_wait_seconds: view
            .estimated_wait_seconds
            .map(|seconds| u32::try_from(seconds).unwrap_or(u32::MAX)),
        callback_queue: view.info.callback_queue.clone().unwrap_or_default(),
    }
}

fn agent_update(update: AgentUpdate) -> v1::AgentUpdate {
    use v1::agent_update::Update;
    let update = match update {
        AgentUpdate::State(view) => Update::State(agent_state(&view)),
        AgentUpdate::Offer {
            contact,
            expires_at,
            reasons,
        } => Update::Offer(v1::Offer {
            contact: Some(live_contact(&contact)),
            expires_at: Some(timestamp(expires_at)),
            reasons,
        }),
        AgentUpdate::OfferWithdrawn(view) => Update::OfferWithdrawn(live_contact(&view)),
        AgentUpdate::Assigned(view) => Update::Assigned(live_contact(&view)),
        AgentUpdate::Released(view) => Update::Released(live_contact(&view)),
    };
    v1::AgentUpdate { update: Some(update) }
}

fn live_state(view: LiveView) -> v1::LiveState {
    v1::LiveState {
        partitions: view.partitions,
        queues: view
            .queues
            .iter()
            .map(|queue| {
                let (target_seconds, target_working_days) = match queue.target {
                    ServiceLevelTarget::Seconds(seconds) => (seconds, 0),
                    ServiceLevelTarget::WorkingDays(days) => (0, days),
                };
                v1::QueueState {
                    queue: queue.queue.clone(),
                    channel: channel_to_proto(queue.channel) as i32,
                    open: queue.open,
                    waiting: queue.waiting,
                    longest_wait_seconds: queue.longest_wait_seconds,
                    target_seconds,
                    target_working_days,
                    target_share: queue.target_share,
                }
            })
            .collect(),
        agents: view.agents.iter().map(agent_state).collect(),
        contacts: view.contacts.iter().map(live_contact).collect(),
    }
}

fn disposition(request: &v1::CompleteContactRequest) -> Result<Disposition, Status> {
    match v1::Disposition::try_from(request.disposition) {
        Ok(v1::Disposition::Resolved) => Ok(Disposition::Resolved),
        Ok(v1::Disposition::Signposted) if !request.partner.trim().is_empty() => {
            Ok(Disposition::SignpostedTo(request.partner.trim().to_owned()))
        }
        Ok(v1::Disposition::Signposted) => Err(status::invalid_field(
            "partner",
            "name the partner organisation signposted to",
        )),
        Ok(v1::Disposition::CallbackBooked) => Ok(Disposition::CallbackBooked),
        Ok(v1::Disposition::FollowUpNeeded) => Ok(Disposition::FollowUpNeeded),
        Ok(v1::Disposition::Referred) => Ok(Disposition::Referred),
        _ => Err(status::invalid_field(
            "disposition",
            "must be resolved, signposted, callback booked, follow-up needed or referred",
        )),
    }
}

fn profile_from_proto(profile: &v1::AgentProfile) -> Result<(String, StoredProfile), Status> {
    let subject = profile.agent.trim();
    if subject.is_empty() {
        return Err(status::invalid_field(
            "profile.agent",
            "must name the agent's staff subject",
        ));
    }
    let mut skills = BTreeMap::new();
    for (skill, level) in &profile.skills {
        let level = u8::try_from(*level)
            .ok()
            .filter(|level| (1..=5).contains(level))
            .ok_or_else(|| {
                status::invalid_field("profile.skills", &format!("{skill}: proficiency must be 1 to 5"))
            })?;
        skills.insert(skill.trim().to_owned(), level);
    }
    let mut channels = Vec::with_capacity(profile.channels.len());
    for channel in &profile.channels {
        channels
            .push(channel_from_proto(*channel).ok_or_else(|| {
                status::invalid_field("profile.channels", "unspecified or unknown channel")
            })?);
    }
    let stored = StoredProfile {
        skills,
        team: profile.team.trim().to_owned(),
        office: (!profile.office.trim().is_empty()).then(|| profile.office.trim().to_owned()),
        channels,
        web_capacity: u8::try_from(profile.web_capacity)
            .map_err(|_| status::invalid_field("profile.web_capacity", "at most 255"))?,
        partition: (!profile.partition.trim().is_empty()).then(|| profile.partition.trim().to_owned()),
    };
    Ok((subject.to_owned(), stored))
}

fn profile_to_proto(subject: &str, profile: &StoredProfile) -> v1::AgentProfile {
    v1::AgentProfile {
        agent: subject.to_owned(),
        skills: profile
            .skills
            .iter()
            .map(|(skill, level)| (skill.clone(), u32::from(*level)))
            .collect(),
        team: profile.team.clone(),
        office: profile.office.clone().unwrap_or_default(),
        channels: profile
            .channels
            .iter()
            .map(|channel| channel_to_proto(*channel) as i32)
            .collect(),
        web_capacity: u32::from(profile.web_capacity),
        partition: profile.partition().to_owned(),
    }
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<v1::AgentUpdate, Status>> + Send>>;

#[async_trait::async_trait]
impl AgentService for RoutingGrpc {
    type StreamUpdatesStream = UpdateStream;

    #[tracing::instrument(name = "routing.sign_in", skip_all)]
    async fn sign_in(&self, request: Request<v1::SignInRequest>) -> Result<Response<v1::AgentState>, Status> {
        self.act(&request, AgentAction::SignIn).await
    }

    #[tracing::instrument(name = "routing.sign_out", skip_all)]
    async fn sign_out(
        &self,
        request: Request<v1::SignOutRequest>,
    ) -> Result<Response<v1::AgentState>, Status> {
        self.act(&request, AgentAction::SignOut).await
    }

    #[tracing::instrument(name = "routing.set_presence", skip_all)]
    async fn set_presence(
        &self,
        request: Request<v1::SetPresenceRequest>,
    ) -> Result<Response<v1::AgentState>, Status> {
        let presence = presence_from_proto("presence", request.get_ref().presence)?;
        self.act(&request, AgentAction::SetPresence(presence)).await
    }

    #[tracing::instrument(name = "routing.stream_updates", skip_all)]
    async fn stream_updates(
        &self,
        request: Request<v1::StreamUpdatesRequest>,
    ) -> Result<Response<Self::StreamUpdatesStream>, Status> {
        let caller = Principal::require(&request)?;
        let receiver = self
            .routers
            .for_agent(&caller.subject)
            .await
            .map_err(|error| router_status(&error))?
            .open_stream(&caller.subject)
            .await
            .map_err(|error| router_status(&error))?;
        let stream = ReceiverStream::new(receiver).map(|update| Ok(agent_update(update)));
        Ok(Response::new(Box::pin(stream)))
    }

    #[tracing::instrument(name = "routing.accept_offer", skip_all)]
    async fn accept_offer(
        &self,
        request: Request<v1::OfferRequest>,
    ) -> Result<Response<v1::AgentState>, Status> {
        let contact = contact_id("contact_id", &request.get_ref().contact_id)?;
        self.act(&request, AgentAction::Accept(contact)).await
    }

    #[tracing::instrument(name = "routing.reject_offer", skip_all)]
    async fn reject_offer(
        &self,
        request: Request<v1::OfferRequest>,
    ) -> Result<Response<v1::AgentState>, Status> {
        let contact = contact_id("contact_id", &request.get_ref().contact_id)?;
        self.act(&request, AgentAction::Reject(contact)).await
    }

    #[tracing::instrument(name = "routing.end_contact", skip_all)]
    async fn end_contact(
        &self,
        request: Request<v1::ContactRequest>,
    ) -> Result<Response<v1::AgentState>, Status> {
        let contact = contact_id("contact_id", &request.get_ref().contact_id)?;
        self.act(&request, AgentAction::End(contact)).await
    }

    #[tracing::instrument(name = "routing.complete_contact", skip_all)]
    async fn complete_contact(
        &self,
        request: Request<v1::CompleteContactRequest>,
    ) -> Result<Response<v1::AgentState>, Status> {
        let contact = contact_id("contact_id", &request.get_ref().contact_id)?;
        let disposition = disposition(request.get_ref())?;
        self.act(&request, AgentAction::Complete(contact, disposition))
            .await
    }

    #[tracing::instrument(name = "routing.transfer_contact", skip_all)]
    async fn transfer_contact(
        &self,
        request: Request<v1::TransferContactRequest>,
    ) -> Result<Response<v1::AgentState>, Status> {
        let contact = contact_id("contact_id", &request.get_ref().contact_id)?;
        let to = transfer_target(request.get_ref().to.as_ref())?;
        self.act(&request, AgentAction::Transfer(contact, to)).await
    }
}

#[async_trait::async_trait]
impl SupervisorService for RoutingGrpc {
    #[tracing::instrument(name = "routing.get_live_state", skip_all)]
    async fn get_live_state(
        &self,
        _request: Request<v1::GetLiveStateRequest>,
    ) -> Result<Response<v1::LiveState>, Status> {
        let view = self.routers.live().await.map_err(|error| router_status(&error))?;
        Ok(Response::new(live_state(view)))
    }

    #[tracing::instrument(name = "routing.explain_contact", skip_all)]
    async fn explain_contact(
        &self,
        request: Request<v1::ContactRequest>,
    ) -> Result<Response<v1::ContactExplanation>, Status> {
        let contact = contact_id("contact_id", &request.get_ref().contact_id)?;
        let (view, explanation) = self
            .routers
            .explain(contact)
            .await
            .map_err(|error| router_status(&error))?;
        let explanation = explanation.unwrap_or_default();
        Ok(Response::new(v1::ContactExplanation {
            contact: view.as_ref().map(live_contact),
            agent: explanation.agent,
            reasons: explanation.reasons,
            candidates: explanation
                .candidates
                .into_iter()
                .map(|(agent, verdict)| v1::CandidateVerdict { agent, verdict })
                .collect(),
        }))
    }

    #[tracing::instrument(name = "routing.move_contact", skip_all)]
    async fn move_contact(
        &self,
        request: Request<v1::TransferContactRequest>,
    ) -> Result<Response<v1::LiveContact>, Status> {
        let contact = contact_id("contact_id", &request.get_ref().contact_id)?;
        let to = transfer_target(request.get_ref().to.as_ref())?;
        let (router, _) = self
            .routers
            .for_contact(contact)
            .await
            .map_err(|error| router_status(&error))?;
        let view = router
            .move_contact(contact, to)
            .await
            .map_err(|error| router_status(&error))?;
        Ok(Response::new(live_contact(&view)))
    }

    #[tracing::instrument(name = "routing.set_agent_presence", skip_all)]
    async fn set_agent_presence(
        &self,
        request: Request<v1::SetAgentPresenceRequest>,
    ) -> Result<Response<v1::AgentState>, Status> {
        let agent = request.get_ref().agent.trim().to_owned();
        if agent.is_empty() {
            return Err(status::invalid_field(
                "agent",
                "must name the agent's staff subject",
            ));
        }
        let presence = presence_from_proto("presence", request.get_ref().presence)?;
        let view = self
            .routers
            .for_agent(&agent)
            .await
            .map_err(|error| router_status(&error))?
            .agent_action(&agent, AgentAction::SetPresence(presence))
            .await
            .map_err(|error| router_status(&error))?;
        Ok(Response::new(agent_state(&view)))
    }

    #[tracing::instrument(name = "routing.put_agent_profile", skip_all)]
    async fn put_agent_profile(
        &self,
        request: Request<v1::PutAgentProfileRequest>,
    ) -> Result<Response<v1::AgentProfile>, Status> {
        let profile = request
            .get_ref()
            .profile
            .as_ref()
            .ok_or_else(|| status::invalid_field("profile", "required"))?;
        let (subject, stored) = profile_from_proto(profile)?;
        self.routers
            .put_profile(&subject, &stored)
            .await
            .map_err(|error| router_status(&error))?;
        Ok(Response::new(profile_to_proto(&subject, &stored)))
    }

    #[tracing::instrument(name = "routing.list_agent_profiles", skip_all)]
    async fn list_agent_profiles(
        &self,
        _request: Request<v1::ListAgentProfilesRequest>,
    ) -> Result<Response<v1::ListAgentProfilesResponse>, Status> {
        let profiles = self
            .routers
            .profiles()
            .await
            .map_err(|error| router_status(&error))?;
        Ok(Response::new(v1::ListAgentProfilesResponse {
            profiles: profiles
                .iter()
                .map(|(subject, profile)| profile_to_proto(subject, profile))
                .collect(),
        }))
    }

    #[tracing::instrument(name = "routing.get_routing_config", skip_all)]
    async fn get_routing_config(
        &self,
        _request: Request<v1::GetRoutingConfigRequest>,
    ) -> Result<Response<v1::RoutingConfigDocument>, Status> {
        let toml = self
            .routers
            .config_toml()
            .await
            .map_err(|error| router_status(&error))?;
        Ok(Response::new(v1::RoutingConfigDocument { toml }))
    }

    #[tracing::instrument(name = "routing.update_routing_config", skip_all)]
    async fn update_routing_config(
        &self,
        request: Request<v1::RoutingConfigDocument>,
    ) -> Result<Response<v1::RoutingConfigDocument>, Status> {
        let toml = self
            .routers
            .reconfigure(&request.get_ref().toml)
            .await
            .map_err(|error| router_status(&error))?;
        Ok(Response::new(v1::RoutingConfigDocument { toml }))
    }
}

#[async_trait::async_trait]
impl QueueService for RoutingGrpc {
    #[tracing::instrument(name = "routing.get_position", skip_all)]
    async fn get_position(
        &self,
        request: Request<v1::ContactRequest>,
    ) -> Result<Response<v1::QueuePosition>, Status> {
        let contact = contact_id("contact_id", &request.get_ref().contact_id)?;
        let (_, view) = self
            .routers
            .for_contact(contact)
            .await
            .map_err(|error| router_status(&error))?;
        Ok(Response::new(queue_position(&view)))
    }

    #[tracing::instrument(name = "routing.report_abandoned", skip_all)]
    async fn report_abandoned(
        &self,
        request: Request<v1::ContactRequest>,
    ) -> Result<Response<v1::QueuePosition>, Status> {
        self.resident(&request, ResidentAction::Abandoned).await
    }

    #[tracing::instrument(name = "routing.accept_callback", skip_all)]
    async fn accept_callback(
        &self,
        request: Request<v1::ContactRequest>,
    ) -> Result<Response<v1::QueuePosition>, Status> {
        self.resident(&request, ResidentAction::AcceptedCallback).await
    }
}

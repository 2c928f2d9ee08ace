//! `switchboard submit`: a command-line intake client, for trying the system
//! and for scripts (a telephony adapter or a reception desk tool would send the
//! same request).

use anyhow::{Context, bail};
use switchboard_proto::v1::{
    Channel, Customer, FaceToFaceOrigin, Needs, PhoneOrigin, SubmitContactRequest, WebOrigin,
    intake_service_client::IntakeServiceClient, submit_contact_request::Origin,
};
use tonic::{Code, metadata::MetadataValue};
use tonic_types::StatusExt;

use crate::cli::{ChannelArg, SubmitArgs};

pub async fn run(args: SubmitArgs) -> anyhow::Result<()> {
    let Some(key) = args.key.clone() else {
        bail!(
            "no intake credentials: set SWITCHBOARD_INTAKE_KEY (for the embedded system: \
             `set -a; . ./var/dev-credentials.env; set +a`) or pass --key"
        );
    };
    let request = build_request(&args);
    let mut client = IntakeServiceClient::connect(args.endpoint.clone())
        .await
        .with_context(|| format!("cannot connect to intake at {}", args.endpoint))?;
    let mut grpc_request = tonic::Request::new(request);
    let bearer: MetadataValue<_> = format!("Bearer {key}")
        .parse()
        .context("the intake key is not a valid header value")?;
    grpc_request.metadata_mut().insert("authorization", bearer);

    match client.submit_contact(grpc_request).await {
        Ok(response) => {
            let answer = response.into_inner();
            if args.json {
                println!("{}", serde_json::to_string(&answer)?);
            } else {
                println!(
                    "accepted: reference {} (contact {})",
                    answer.reference, answer.contact_id
                );
            }
            Ok(())
        }
        Err(status) if status.code() == Code::InvalidArgument => {
            let mut message = String::from("the contact was refused:");
            for violation in status
                .get_error_details()
                .bad_request()
                .map(|b| b.field_violations.clone())
                .unwrap_or_default()
            {
                message.push_str(&format!("\n  {}: {}", violation.field, violation.description));
            }
            bail!(message)
        }
        Err(status) => bail!("intake answered {:?}: {}", status.code(), status.message()),
    }
}

fn build_request(args: &SubmitArgs) -> SubmitContactRequest {
    let channel = match args.channel {
        ChannelArg::Phone => Channel::Phone,
        ChannelArg::Web => Channel::Web,
        ChannelArg::FaceToFace => Channel::FaceToFace,
        ChannelArg::Email => Channel::Email,
        ChannelArg::Letter => Channel::Letter,
    };
    let origin = match args.channel {
        ChannelArg::Phone => Some(Origin::Phone(PhoneOrigin {
            caller_number: args.phone.clone(),
            dialled_number: args.dialled.clone(),
            call_id: String::new(),
        })),
        ChannelArg::Web => Some(Origin::Web(WebOrigin {
            form_id: args.form.clone(),
            page_url: String::new(),
        })),
        ChannelArg::FaceToFace => Some(Origin::FaceToFace(FaceToFaceOrigin {
            office_id: args.office.clone(),
            desk: args.desk.clone(),
        })),
        ChannelArg::Email | ChannelArg::Letter => None,
    };
    SubmitContactRequest {
        channel: channel as i32,
        service: args.service.clone(),
        customer: Some(Customer {
            name: args.name.clone(),
            phone: args.phone.clone(),
            email: args.email.clone(),
            postcode: args.postcode.clone(),
            address_line: String::new(),
            uprn: String::new(),
        }),
        summary: args.summary.clone(),
        details: args.details.iter().cloned().collect(),
        needs: Some(Needs {
            language: args.language.clone(),
            british_sign_language: args.bsl,
            ..Needs::default()
        }),
        idempotency_key: args.idempotency_key.clone(),
        origin,
    }
}

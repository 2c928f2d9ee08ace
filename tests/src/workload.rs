//! Residents who contact the council several times, and what the case store
//! must make of them.
//!
//! Every resident has their own mobile number, so the case store can match
//! them exactly; each contacts one of a few services over phone, web and
//! face-to-face in turn. The expectations follow from that: one customer per
//! resident, one case per resident and service, every contact once.

use std::collections::{BTreeMap, BTreeSet};

use switchboard_proto::v1::{
    Channel, Customer, FaceToFaceOrigin, Needs, PhoneOrigin, SubmitContactRequest, WebOrigin,
    submit_contact_request::Origin,
};

/// Services the generated contacts are about; all are offered on every
/// channel the workload uses.
pub const SERVICES: [&str; 3] = ["council-tax", "housing-repairs", "registrars"];

/// The office face-to-face visits happen at.
pub const OFFICE: &str = "lymington-town-hall";

#[derive(Debug, Clone)]
pub struct Resident {
    pub index: usize,
    /// E.164, as the case store keeps it.
    pub phone_e164: String,
    pub name: String,
}

impl Resident {
    /// Residents 0–999 have mobile numbers, 1000–1999 landlines: Ofcom's
    /// ranges for drama (07700 900000–900999, 01632 960000–960999), never a
    /// real person's number. Each test system has its own stores, so tests
    /// may reuse residents.
    pub fn new(index: usize) -> Resident {
        assert!(index < 2_000, "only 2,000 numbers are set aside for fiction");
        let phone_e164 = if index < 1_000 {
            format!("+447700{}", 900_000 + index)
        } else {
            format!("+441632{}", 960_000 + index - 1_000)
        };
        Resident {
            index,
            phone_e164,
            name: format!("Resident {index}"),
        }
    }

    /// The number as a resident would type it, in a few UK styles.
    pub fn phone_as_typed(&self) -> String {
        let national = format!("0{}", &self.phone_e164[3..]);
        match self.index % 3 {
            0 => national,
            1 => format!("{} {}", &national[..5], &national[5..]),
            _ => format!("+44 {} {}", &national[1..5], &national[5..]),
        }
    }
}

/// One contact to submit, with who it is from.
#[derive(Debug, Clone)]
pub struct PlannedContact {
    pub resident: usize,
    pub service: &'static str,
    pub channel: Channel,
    pub request: SubmitContactRequest,
}

/// A planned stream of contacts.
#[derive(Debug, Clone)]
pub struct Workload {
    pub residents: Vec<Resident>,
    pub contacts: Vec<PlannedContact>,
}

impl Workload {
    /// `contacts` contacts from `residents` residents (numbered from
    /// `first_resident`), channels and services in rotation.
    pub fn new(first_resident: usize, residents: usize, contacts: usize) -> Workload {
        let residents: Vec<Resident> = (first_resident..first_resident + residents)
            .map(Resident::new)
            .collect();
        let contacts = (0..contacts)
            .map(|number| {
                let resident = &residents[number % residents.len()];
                let round = number / residents.len();
                let service = SERVICES[(resident.index + round / 2) % SERVICES.len()];
                let channel = match (number + round) % 3 {
                    0 => Channel::Phone,
                    1 => Channel::Web,
                    _ => Channel::FaceToFace,
                };
                PlannedContact {
                    resident: resident.index,
                    service,
                    channel,
                    request: request_for(resident, service, channel, number),
                }
            })
            .collect();
        Workload { residents, contacts }
    }

    /// How many distinct cases the case store must end with.
    pub fn expected_cases(&self) -> usize {
        self.contacts
            .iter()
            .map(|contact| (contact.resident, contact.service))
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// Contacts per resident.
    pub fn contacts_per_resident(&self) -> BTreeMap<usize, usize> {
        let mut counts = BTreeMap::new();
        for contact in &self.contacts {
            *counts.entry(contact.resident).or_default() += 1;
        }
        counts
    }
}

/// A request as the channel's client would send it.
pub fn request_for(
    resident: &Resident,
    service: &str,
    channel: Channel,
    number: usize,
) -> SubmitContactRequest {
    let origin = match channel {
        Channel::Phone => Some(Origin::Phone(PhoneOrigin {
            caller_number: resident.phone_as_typed(),
            dialled_number: "01590 646111".to_owned(),
            call_id: format!("call-{number}"),
        })),
        Channel::Web => Some(Origin::Web(WebOrigin {
            form_id: format!("{service}-enquiry"),
            page_url: String::new(),
        })),
        Channel::FaceToFace => Some(Origin::FaceToFace(FaceToFaceOrigin {
            office_id: OFFICE.to_owned(),
            desk: "1".to_owned(),
        })),
        _ => None,
    };
    SubmitContactRequest {
        channel: channel as i32,
        service: service.to_owned(),
        customer: Some(Customer {
            name: resident.name.clone(),
            phone: resident.phone_as_typed(),
            email: String::new(),
            postcode: "SO41 9ZG".to_owned(),
            address_line: String::new(),
            uprn: String::new(),
        }),
        summary: format!("enquiry number {number}"),
        details: BTreeMap::from([("enquiry".to_owned(), number.to_string())]),
        needs: Some(Needs {
            language: "en".to_owned(),
            ..Needs::default()
        }),
        idempotency_key: format!("workload-{}-{number}", resident.index),
        origin,
    }
}

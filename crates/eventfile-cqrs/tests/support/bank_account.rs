//! cqrs-es's documented example aggregate, the `BankAccount` of its book (chapters "Domain
//! Events", "Commands", "Aggregate", "Custom error and service", "Adding more logic"), written
//! against cqrs-es 0.5's `Aggregate` (a `TYPE` constant, events written to an `EventSink`).

use std::fmt::{Display, Formatter};

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize)]
pub enum BankAccountCommand {
    OpenAccount { account_id: String },
    DepositMoney { amount: f64 },
    WithdrawMoney { amount: f64 },
    WriteCheck { check_number: String, amount: f64 },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum BankAccountEvent {
    AccountOpened {
        account_id: String,
    },
    CustomerDepositedMoney {
        amount: f64,
        balance: f64,
    },
    CustomerWithdrewCash {
        amount: f64,
        balance: f64,
    },
    CustomerWroteCheck {
        check_number: String,
        amount: f64,
        balance: f64,
    },
}

/// The event version the book gives every event.
pub const EVENT_VERSION: &str = "1.0";

impl DomainEvent for BankAccountEvent {
    fn event_type(&self) -> String {
        let event_type: &str = match self {
            BankAccountEvent::AccountOpened { .. } => "AccountOpened",
            BankAccountEvent::CustomerDepositedMoney { .. } => "CustomerDepositedMoney",
            BankAccountEvent::CustomerWithdrewCash { .. } => "CustomerWithdrewCash",
            BankAccountEvent::CustomerWroteCheck { .. } => "CustomerWroteCheck",
        };
        event_type.to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}

#[derive(Debug)]
pub struct BankAccountError(pub String);

impl Display for BankAccountError {
    fn fmt(&self, f: &mut Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for BankAccountError {}

impl From<&str> for BankAccountError {
    fn from(message: &str) -> Self {
        BankAccountError(message.to_string())
    }
}

#[derive(Debug, Default, Clone)]
pub struct BankAccountServices;

pub struct AtmError;
pub struct CheckingError;

impl BankAccountServices {
    async fn atm_withdrawal(&self, _atm_id: &str, _amount: f64) -> Result<(), AtmError> {
        Ok(())
    }

    async fn validate_check(&self, _account: &str, _check: &str) -> Result<(), CheckingError> {
        Ok(())
    }
}

#[derive(Debug, Serialize, Default, Deserialize, PartialEq)]
pub struct BankAccount {
    pub opened: bool,
    // this is a floating point for our example, don't do this IRL
    pub balance: f64,
}

impl Aggregate for BankAccount {
    // This identifier should be unique to the system.
    const TYPE: &'static str = "Account";
    type Command = BankAccountCommand;
    type Event = BankAccountEvent;
    type Error = BankAccountError;
    type Services = BankAccountServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            BankAccountCommand::OpenAccount { account_id } => {
                sink.write(BankAccountEvent::AccountOpened { account_id }, self)
                    .await;
            }
            BankAccountCommand::DepositMoney { amount } => {
                let balance = self.balance + amount;
                sink.write(
                    BankAccountEvent::CustomerDepositedMoney { amount, balance },
                    self,
                )
                .await;
            }
            BankAccountCommand::WithdrawMoney { amount } => {
                let balance = self.balance - amount;
                if balance < 0_f64 {
                    return Err("funds not available".into());
                }
                if services.atm_withdrawal("atm", amount).await.is_err() {
                    return Err("atm rule violation".into());
                }
                sink.write(
                    BankAccountEvent::CustomerWithdrewCash { amount, balance },
                    self,
                )
                .await;
            }
            BankAccountCommand::WriteCheck {
                check_number,
                amount,
            } => {
                let balance = self.balance - amount;
                if balance < 0_f64 {
                    return Err("funds not available".into());
                }
                if services.validate_check("", &check_number).await.is_err() {
                    return Err("check invalid".into());
                }
                sink.write(
                    BankAccountEvent::CustomerWroteCheck {
                        check_number,
                        amount,
                        balance,
                    },
                    self,
                )
                .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            BankAccountEvent::AccountOpened { .. } => self.opened = true,
            BankAccountEvent::CustomerDepositedMoney { amount: _, balance } => {
                self.balance = balance;
            }
            BankAccountEvent::CustomerWithdrewCash { amount: _, balance } => {
                self.balance = balance;
            }
            BankAccountEvent::CustomerWroteCheck {
                check_number: _,
                amount: _,
                balance,
            } => {
                self.balance = balance;
            }
        }
    }
}

/// A second aggregate type whose name starts like the first one's (`AccountAudit` beside
/// `Account`): the replay of all `Account` events must not include its events.
#[derive(Debug, Serialize, Default, Deserialize, PartialEq)]
pub struct AccountAudit {
    pub entries: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum AuditEvent {
    Audited,
}

impl DomainEvent for AuditEvent {
    fn event_type(&self) -> String {
        "Audited".to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

impl Aggregate for AccountAudit {
    const TYPE: &'static str = "AccountAudit";
    type Command = ();
    type Event = AuditEvent;
    type Error = BankAccountError;
    type Services = ();

    async fn handle(&mut self, _: (), _: &(), sink: &EventSink<Self>) -> Result<(), Self::Error> {
        sink.write(AuditEvent::Audited, self).await;
        Ok(())
    }

    fn apply(&mut self, _: AuditEvent) {
        self.entries += 1;
    }
}

"""Signed webhook requests in each provider's documented shape, with keys made here.

Each provider's ``request(kind, address, event_id, when, ...)`` returns the (path, body,
headers) that provider would POST to ``publisher serve``; ``forged=True`` signs it with a key
that is not the one publisher trusts. ``kind`` is one of hard, soft, complaint.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from tests.conftest import NOW

Request = tuple[str, bytes, dict[str, str]]

TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-bounces"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem"
SUBSCRIBE_URL = (
    "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + TOPIC + "&Token=2336412f37fb687f"
)
MAILGUN_KEY = "key-mailgun-signing-4f8a0c2d9e7b1a36"
POSTMARK_SECRET = "postmark-hook-secret-Hd72kQp0Zx"
RESEND_SECRET = "whsec_" + base64.b64encode(b"resend-svix-secret-0123456789ab").decode()
PROVIDERS = ("ses", "mailgun", "sendgrid", "postmark", "resend")


def _cert(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Keys:
    sns: rsa.RSAPrivateKey
    sns_other: rsa.RSAPrivateKey
    sendgrid: ec.EllipticCurvePrivateKey
    sendgrid_other: ec.EllipticCurvePrivateKey

    @classmethod
    def make(cls) -> Keys:
        return cls(
            rsa.generate_private_key(65537, 2048),
            rsa.generate_private_key(65537, 2048),
            ec.generate_private_key(ec.SECP256R1()),
            ec.generate_private_key(ec.SECP256R1()),
        )

    @property
    def certificate(self) -> bytes:
        return _cert(self.sns)

    @property
    def sendgrid_public(self) -> str:
        der = self.sendgrid.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


# -- Amazon SES through SNS ------------------------------------------------------------------------

_SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}


def sns_sign(message: dict[str, str], key: rsa.RSAPrivateKey) -> dict[str, str]:
    """``message`` with SignatureVersion 2 (SHA256) signature, as SNS signs it."""
    signed = "".join(f"{n}\n{message[n]}\n" for n in _SNS_FIELDS[message["Type"]] if n in message)
    signature = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    return {**message, "SignatureVersion": "2", "Signature": base64.b64encode(signature).decode()}


def ses_record(kind: str, address: str, when: datetime, batch_key: str | None) -> dict[str, object]:
    mail = {
        "timestamp": _iso(when - timedelta(minutes=1)),
        "messageId": "0100018c-5a3d-4f65-8a4e-6c1f0c7a2b11-000000",
        "source": "news@example.org",
        "destination": [address],
        "tags": {"batch": [batch_key]} if batch_key else {},
    }
    if kind == "complaint":
        complaint = {
            "complainedRecipients": [{"emailAddress": address}],
            "timestamp": _iso(when),
            "feedbackId": "0100018c-feedback",
            "complaintFeedbackType": "abuse",
        }
        return {"notificationType": "Complaint", "complaint": complaint, "mail": mail}
    bounce = {
        "bounceType": "Permanent" if kind == "hard" else "Transient",
        "bounceSubType": "General" if kind == "hard" else "MailboxFull",
        "bouncedRecipients": [
            {"emailAddress": address, "action": "failed", "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1"}
        ],
        "timestamp": _iso(when),
        "feedbackId": "0100018c-feedback",
    }
    return {"notificationType": "Bounce", "bounce": bounce, "mail": mail}


def ses(keys: Keys, kind: str, address: str, event_id: str, when: datetime, batch_key: str | None = None,
        *, forged: bool = False, topic: str = TOPIC, cert_url: str = CERT_URL) -> Request:  # fmt: skip
    message = {
        "Type": "Notification",
        "MessageId": event_id,
        "TopicArn": topic,
        "Message": json.dumps(ses_record(kind, address, when, batch_key)),
        "Timestamp": _iso(when),
        "SigningCertURL": cert_url,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=" + TOPIC + ":1",
    }
    signed = sns_sign(message, keys.sns_other if forged else keys.sns)
    return "/webhooks/ses", json.dumps(signed).encode(), {"x-amz-sns-message-type": "Notification"}


def ses_subscription(keys: Keys, when: datetime, *, topic: str = TOPIC) -> Request:
    message = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f",
        "TopicArn": topic,
        "Message": f"You have chosen to subscribe to the topic {topic}.",
        "SubscribeURL": SUBSCRIBE_URL,
        "Timestamp": _iso(when),
        "SigningCertURL": CERT_URL,
    }
    body = json.dumps(sns_sign(message, keys.sns)).encode()
    return "/webhooks/ses", body, {"x-amz-sns-message-type": "SubscriptionConfirmation"}


# -- Mailgun ---------------------------------------------------------------------------------------


def mailgun(keys: Keys, kind: str, address: str, event_id: str, when: datetime, batch_key: str | None = None,
            *, forged: bool = False) -> Request:  # fmt: skip
    timestamp = str(int(when.timestamp()))
    key = b"key-not-the-one" if forged else MAILGUN_KEY.encode()
    signature = hmac.new(key, (timestamp + event_id).encode(), hashlib.sha256).hexdigest()
    data: dict[str, object] = {
        "id": "G9Bn5sl1TC6nu79C8C0bwg",
        "timestamp": when.timestamp(),
        "log-level": "error" if kind != "complaint" else "warn",
        "recipient": address,
        "recipient-domain": address.rpartition("@")[2],
        "message": {"headers": {"message-id": "20261124063000.1.ABC@mg.example.org", "subject": "Example News"}},
        "user-variables": {"digest-id": (batch_key or "")[:-5] or None, "batch-key": batch_key},
    }
    if kind == "complaint":
        data["event"] = "complained"
    else:
        data |= {
            "event": "failed",
            "severity": "permanent" if kind == "hard" else "temporary",
            "reason": "bounce" if kind == "hard" else "generic",
            "delivery-status": {"code": 550 if kind == "hard" else 452, "description": "mailbox unavailable"},
        }
    body = {"signature": {"timestamp": timestamp, "token": event_id, "signature": signature}, "event-data": data}
    return "/webhooks/mailgun", json.dumps(body).encode(), {"content-type": "application/json"}


# -- SendGrid --------------------------------------------------------------------------------------


def sendgrid(keys: Keys, kind: str, address: str, event_id: str, when: datetime, batch_key: str | None = None,
             *, forged: bool = False) -> Request:  # fmt: skip
    event: dict[str, object] = {
        "email": address,
        "timestamp": int(when.timestamp()),
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "sg_event_id": event_id,
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "digest_id": (batch_key or "")[:-5] or None,
        "batch_key": batch_key,
    }
    if kind == "complaint":
        event["event"] = "spamreport"
    else:
        event |= {
            "event": "bounce",
            "type": "bounce" if kind == "hard" else "blocked",
            "bounce_classification": "Invalid Address" if kind == "hard" else "Reputation",
            "reason": "550 5.1.1 The email account does not exist.",
            "status": "5.1.1",
        }
    body = json.dumps([event]).encode()
    timestamp = str(int(when.timestamp()))
    key = keys.sendgrid_other if forged else keys.sendgrid
    signature = base64.b64encode(key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    headers = {
        "content-type": "application/json",
        "x-twilio-email-event-webhook-signature": signature,
        "x-twilio-email-event-webhook-timestamp": timestamp,
    }
    return "/webhooks/sendgrid", body, headers


# -- Postmark --------------------------------------------------------------------------------------


def postmark(keys: Keys, kind: str, address: str, event_id: str, when: datetime, batch_key: str | None = None,
             *, forged: bool = False) -> Request:  # fmt: skip
    record: dict[str, object] = {
        "ID": int(hashlib.sha256(event_id.encode()).hexdigest()[:12], 16),
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Email": address,
        "From": "news@example.org",
        "BouncedAt": when.isoformat(),
        "Subject": "Example News",
        "MessageStream": "broadcast",
        "Metadata": {"digest_id": (batch_key or "")[:-5], "batch_key": batch_key or ""},
        "ServerID": 23,
        "Tag": "",
    }
    if kind == "complaint":
        record |= {"RecordType": "SpamComplaint", "Type": "SpamComplaint", "TypeCode": 512, "Name": "Spam complaint"}
    else:
        record |= {
            "RecordType": "Bounce",
            "Type": "HardBounce" if kind == "hard" else "SoftBounce",
            "TypeCode": 1 if kind == "hard" else 4096,
            "Name": "Hard bounce" if kind == "hard" else "Soft bounce",
            "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
            "Inactive": kind == "hard",
            "CanActivate": True,
        }
    secret = "not-the-secret-at-all-0000" if forged else POSTMARK_SECRET
    auth = "Basic " + base64.b64encode(f"postmark:{secret}".encode()).decode()
    return "/webhooks/postmark", json.dumps(record).encode(), {"authorization": auth}


# -- Resend (Svix) ---------------------------------------------------------------------------------


def resend(keys: Keys, kind: str, address: str, event_id: str, when: datetime, batch_key: str | None = None,
           *, forged: bool = False) -> Request:  # fmt: skip
    data: dict[str, object] = {
        "broadcast_id": None,
        "created_at": when.isoformat(),
        "email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
        "from": "Example News <news@example.org>",
        "to": [address],
        "subject": "Example News",
    }
    if kind != "complaint":
        data["bounce"] = {
            "message": "The recipient's email address does not exist.",
            "subType": "General" if kind == "hard" else "MailboxFull",
            "type": "Permanent" if kind == "hard" else "Transient",
        }
    payload = {"type": "email.complained" if kind == "complaint" else "email.bounced", "created_at": when.isoformat(),
               "data": data}  # fmt: skip
    body = json.dumps(payload).encode()
    timestamp = str(int(when.timestamp()))
    secret = base64.b64decode(RESEND_SECRET.removeprefix("whsec_"))
    if forged:
        secret = b"another-svix-secret"
    mac = hmac.new(secret, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    headers = {
        "svix-id": event_id,
        "svix-timestamp": timestamp,
        "svix-signature": "v1," + base64.b64encode(mac).decode(),
    }
    return "/webhooks/resend", body, headers


MAKERS = {"ses": ses, "mailgun": mailgun, "sendgrid": sendgrid, "postmark": postmark, "resend": resend}

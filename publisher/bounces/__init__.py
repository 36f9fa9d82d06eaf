"""Bounces and complaints: what the mail providers report back, and the list cleaning it drives.

events      the common model: one MailEvent per (provider event, address)
ses, mailgun, sendgrid, postmark, resend
            one module per provider: check the request's signature (or secret), then read
            its documented payload into MailEvents; a forged or stale request raises Forged
record      MailEvents into the store (publisher.store.suppressions): a hard bounce or a
            complaint suppresses the address at once, soft bounces count in a window
webhooks    the /webhooks/<provider> endpoints of ``publisher serve``
sync        `publisher subscribers sync-suppressions`: a provider's own suppression list
watch       the bounce and complaint counts and the complaint rate `publisher status` shows
"""

"""Organisations (teams): people who work together and pay from one shared wallet.

An organisation has one owner, admins and members; admins invite people by email (a signed,
single-use link), remove members and set a member's monthly credit limit; the owner transfers
ownership. A member's generations in the organisation's context draw from its wallet
(``multinotes.wallet.service``, the same reserve/settle rules as a person's wallet), and the
owner and admins see usage per member. Who may do what is decided in one place:
``multinotes.sharing.access.organisation``.
"""

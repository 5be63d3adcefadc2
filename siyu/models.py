"""Every table, imported once so SQLAlchemy's metadata (and Alembic) sees the whole model."""

from siyu.audit.models import AuditLog
from siyu.auth.models import ApiToken, User, UserSession
from siyu.automation.models import Delivery, OutboxItem
from siyu.channels.models import Channel, ChannelCost, ChannelReach
from siyu.communities.models import ChatGroup
from siyu.connections.models import Connection
from siyu.consent.models import OptOut
from siyu.customers.models import Customer
from siyu.db import Base
from siyu.events.models import Event, Interaction, SurveyResponse
from siyu.identity.models import (
    CustomerMerge,
    Identifier,
    IdentifierOverride,
    IdentityPass,
    QuarantinedIdentifier,
    RecordIdentity,
    SourceRecord,
)
from siyu.membership.models import Membership
from siyu.orders.models import Order, OrderItem, Product
from siyu.orgs.models import Brand, OrgUnit, Store
from siyu.pii.models import PiiKey
from siyu.privacy.models import CustomerErasure, ErasedIdentifier, ErasureBlock
from siyu.referral.models import Referral
from siyu.segments.models import Segment, SegmentMember
from siyu.sop.models import Sop, SopEnrollment, SopVersion, StaffTask
from siyu.staff.models import Staff
from siyu.tags.models import CustomerTag, CustomerTagHistory, Tag, TagGroup
from siyu.wecom.models import (
    WeComAccessToken,
    WeComCallbackEvent,
    WeComCallbackNonce,
    WeComContactTag,
    WeComContactWay,
    WeComDepartment,
    WeComExternalContact,
    WeComMassTask,
    WeComMember,
    WeComSyncRun,
    WeComSyncSeen,
    WeComTransfer,
    WeComWelcome,
)

__all__ = [
    "ApiToken",
    "AuditLog",
    "Base",
    "Brand",
    "Channel",
    "ChannelCost",
    "ChannelReach",
    "ChatGroup",
    "Connection",
    "Customer",
    "CustomerErasure",
    "CustomerMerge",
    "CustomerTag",
    "CustomerTagHistory",
    "Delivery",
    "ErasedIdentifier",
    "ErasureBlock",
    "Event",
    "IdentifierOverride",
    "IdentityPass",
    "Identifier",
    "Interaction",
    "Membership",
    "OptOut",
    "Order",
    "OutboxItem",
    "OrderItem",
    "OrgUnit",
    "PiiKey",
    "Product",
    "QuarantinedIdentifier",
    "RecordIdentity",
    "Referral",
    "Segment",
    "SegmentMember",
    "SourceRecord",
    "Sop",
    "SopEnrollment",
    "SopVersion",
    "StaffTask",
    "Staff",
    "Store",
    "SurveyResponse",
    "Tag",
    "User",
    "UserSession",
    "TagGroup",
    "WeComAccessToken",
    "WeComCallbackEvent",
    "WeComCallbackNonce",
    "WeComContactTag",
    "WeComContactWay",
    "WeComDepartment",
    "WeComExternalContact",
    "WeComMember",
    "WeComSyncRun",
    "WeComSyncSeen",
    "WeComTransfer",
    "WeComMassTask",
    "WeComWelcome",
]

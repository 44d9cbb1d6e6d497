"""order items are found through their orders: no index on order_item.customer_pk

A customer's products are read through the customer's orders (ix_orders_customer_created, then
uq_order_item), as fast for a card as the index was; the index cost every imported item an entry
in random order (~7 % of importing a large orders file).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:05:00
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_order_item_customer_pk", table_name="order_item")


def downgrade() -> None:
    op.create_index("ix_order_item_customer_pk", "order_item", ["customer_pk"], unique=False)

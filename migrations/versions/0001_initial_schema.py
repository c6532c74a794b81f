"""initial schema

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table('analytics_trip_status_counts',
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('status', name=op.f('pk_analytics_trip_status_counts'))
    )
    op.create_table('drivers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drivers')),
    sa.UniqueConstraint('phone', name=op.f('uq_drivers_phone'))
    )
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('envelope', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('event_id', name=op.f('uq_outbox_event_id'))
    )
    op.create_index('ix_outbox_unpublished', 'outbox', ['id'], unique=False, postgresql_where=sa.text('published_at IS NULL'))
    op.create_table('processed_events',
    sa.Column('consumer', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'event_id', name=op.f('pk_processed_events'))
    )
    op.create_table('riders',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_riders')),
    sa.UniqueConstraint('phone', name=op.f('uq_riders_phone'))
    )
    op.create_table('trips',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('rider_id', sa.Uuid(), nullable=False),
    sa.Column('driver_id', sa.Uuid(), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('product', sa.String(length=16), nullable=False),
    sa.Column('pickup', geoalchemy2.types.Geography(geometry_type='POINT', srid=4326, dimension=2, from_text='ST_GeogFromText', name='geography', nullable=False), nullable=False),
    sa.Column('dropoff', geoalchemy2.types.Geography(geometry_type='POINT', srid=4326, dimension=2, from_text='ST_GeogFromText', name='geography', nullable=False), nullable=False),
    sa.Column('pickup_cell', sa.String(length=16), nullable=False),
    sa.Column('fare_amount', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('surge_multiplier', sa.Numeric(precision=4, scale=2), nullable=False),
    sa.Column('fare_breakdown', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('distance_m', sa.Double(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('arrived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('canceled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("driver_id IS NOT NULL OR NOT (status IN ('accepted', 'arriving', 'in_progress'))", name=op.f('ck_trips_driver_when_assigned')),
    sa.CheckConstraint("status IN ('accepted', 'arriving', 'completed', 'driver_canceled', 'in_progress', 'no_drivers_available', 'processing', 'rider_canceled')", name=op.f('ck_trips_status')),
    sa.ForeignKeyConstraint(['driver_id'], ['drivers.id'], name=op.f('fk_trips_driver_id_drivers')),
    sa.ForeignKeyConstraint(['rider_id'], ['riders.id'], name=op.f('fk_trips_rider_id_riders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trips'))
    )
    op.create_index(op.f('ix_trips_driver_id'), 'trips', ['driver_id'], unique=False)
    op.create_index('ix_trips_processing', 'trips', ['requested_at'], unique=False, postgresql_where=sa.text("status = 'processing'"))
    op.create_index(op.f('ix_trips_rider_id'), 'trips', ['rider_id'], unique=False)
    op.create_index('uq_trips_active_driver', 'trips', ['driver_id'], unique=True, postgresql_where=sa.text("status IN ('accepted', 'arriving', 'in_progress')"))
    op.create_index('uq_trips_active_rider', 'trips', ['rider_id'], unique=True, postgresql_where=sa.text("status IN ('accepted', 'arriving', 'in_progress', 'processing')"))
    op.create_index('uq_trips_idempotency', 'trips', ['rider_id', 'idempotency_key'], unique=True, postgresql_where=sa.text('idempotency_key IS NOT NULL'))
    op.create_table('vehicles',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('driver_id', sa.Uuid(), nullable=False),
    sa.Column('make', sa.String(length=40), nullable=False),
    sa.Column('model', sa.String(length=40), nullable=False),
    sa.Column('plate', sa.String(length=16), nullable=False),
    sa.Column('seats', sa.Integer(), nullable=False),
    sa.Column('product', sa.String(length=16), nullable=False),
    sa.CheckConstraint("product IN ('economy', 'comfort', 'xl')", name=op.f('ck_vehicles_product')),
    sa.CheckConstraint('seats BETWEEN 1 AND 12', name=op.f('ck_vehicles_seats')),
    sa.ForeignKeyConstraint(['driver_id'], ['drivers.id'], name=op.f('fk_vehicles_driver_id_drivers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vehicles')),
    sa.UniqueConstraint('driver_id', name=op.f('uq_vehicles_driver_id')),
    sa.UniqueConstraint('plate', name=op.f('uq_vehicles_plate'))
    )
    op.create_table('dispatch_decisions',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('trip_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('strategy', sa.String(length=32), nullable=False),
    sa.Column('candidates', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('offered_driver_id', sa.Uuid(), nullable=True),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['trip_id'], ['trips.id'], name=op.f('fk_dispatch_decisions_trip_id_trips')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatch_decisions'))
    )
    op.create_index(op.f('ix_dispatch_decisions_trip_id'), 'dispatch_decisions', ['trip_id'], unique=False)
    op.create_table('offers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('trip_id', sa.Uuid(), nullable=False),
    sa.Column('driver_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('pickup_eta_s', sa.Double(), nullable=False),
    sa.Column('distance_m', sa.Double(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('responded_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['driver_id'], ['drivers.id'], name=op.f('fk_offers_driver_id_drivers')),
    sa.ForeignKeyConstraint(['trip_id'], ['trips.id'], name=op.f('fk_offers_trip_id_trips')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_offers'))
    )
    op.create_index('ix_offers_open_expiry', 'offers', ['expires_at'], unique=False, postgresql_where=sa.text("status = 'open'"))
    op.create_index(op.f('ix_offers_trip_id'), 'offers', ['trip_id'], unique=False)
    op.create_index('uq_offers_open_driver', 'offers', ['driver_id'], unique=True, postgresql_where=sa.text("status = 'open'"))
    op.create_index('uq_offers_open_trip', 'offers', ['trip_id'], unique=True, postgresql_where=sa.text("status = 'open'"))


def downgrade() -> None:
    op.drop_index('uq_offers_open_trip', table_name='offers', postgresql_where=sa.text("status = 'open'"))
    op.drop_index('uq_offers_open_driver', table_name='offers', postgresql_where=sa.text("status = 'open'"))
    op.drop_index(op.f('ix_offers_trip_id'), table_name='offers')
    op.drop_index('ix_offers_open_expiry', table_name='offers', postgresql_where=sa.text("status = 'open'"))
    op.drop_table('offers')
    op.drop_index(op.f('ix_dispatch_decisions_trip_id'), table_name='dispatch_decisions')
    op.drop_table('dispatch_decisions')
    op.drop_table('vehicles')
    op.drop_index('uq_trips_idempotency', table_name='trips', postgresql_where=sa.text('idempotency_key IS NOT NULL'))
    op.drop_index('uq_trips_active_rider', table_name='trips', postgresql_where=sa.text("status IN ('accepted', 'arriving', 'in_progress', 'processing')"))
    op.drop_index('uq_trips_active_driver', table_name='trips', postgresql_where=sa.text("status IN ('accepted', 'arriving', 'in_progress')"))
    op.drop_index(op.f('ix_trips_rider_id'), table_name='trips')
    op.drop_index('ix_trips_processing', table_name='trips', postgresql_where=sa.text("status = 'processing'"))
    op.drop_index(op.f('ix_trips_driver_id'), table_name='trips')
    op.drop_table('trips')
    op.drop_table('riders')
    op.drop_table('processed_events')
    op.drop_index('ix_outbox_unpublished', table_name='outbox', postgresql_where=sa.text('published_at IS NULL'))
    op.drop_table('outbox')
    op.drop_table('drivers')
    op.drop_table('analytics_trip_status_counts')

"""The "Keep Developing" features: tags, comments, likes, images; indexes for paging.

Revision ID: 0002_blog_features
Revises: 0001_tutorial
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_blog_features"
down_revision = "0001_tutorial"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_post_created", "post", ["created"])
    op.create_index("ix_post_author_id", "post", ["author_id"])
    op.create_table(
        "tag",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(32), nullable=False),
        sa.UniqueConstraint("name", name="uq_tag_name"),
    )
    op.create_table(
        "post_tag",
        sa.Column(
            "post_id",
            sa.Integer(),
            sa.ForeignKey("post.id", ondelete="CASCADE", name="fk_post_tag_post_id_post"),
            primary_key=True,
        ),
        sa.Column(
            "tag_id",
            sa.Integer(),
            sa.ForeignKey("tag.id", ondelete="CASCADE", name="fk_post_tag_tag_id_tag"),
            primary_key=True,
        ),
    )
    op.create_index("ix_post_tag_tag_id", "post_tag", ["tag_id", "post_id"])
    op.create_table(
        "comment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "post_id",
            sa.Integer(),
            sa.ForeignKey("post.id", ondelete="CASCADE", name="fk_comment_post_id_post"),
            nullable=False,
        ),
        sa.Column(
            "author_id",
            sa.Integer(),
            sa.ForeignKey("user.id", name="fk_comment_author_id_user"),
            nullable=False,
        ),
        sa.Column(
            "created", sa.DateTime(), nullable=False, server_default=sa.func.current_timestamp()
        ),
        sa.Column("body", sa.Text(), nullable=False),
    )
    op.create_index("ix_comment_post_id", "comment", ["post_id"])
    op.create_table(
        "post_like",
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("user.id", ondelete="CASCADE", name="fk_post_like_user_id_user"),
            primary_key=True,
        ),
        sa.Column(
            "post_id",
            sa.Integer(),
            sa.ForeignKey("post.id", ondelete="CASCADE", name="fk_post_like_post_id_post"),
            primary_key=True,
        ),
    )
    op.create_index("ix_post_like_post_id", "post_like", ["post_id"])
    op.create_table(
        "image",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "post_id",
            sa.Integer(),
            sa.ForeignKey("post.id", ondelete="CASCADE", name="fk_image_post_id_post"),
            nullable=False,
        ),
        sa.Column("mimetype", sa.String(32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.UniqueConstraint("post_id", name="uq_image_post_id"),
    )


def downgrade():
    op.drop_table("image")
    op.drop_table("post_like")
    op.drop_table("comment")
    op.drop_table("post_tag")
    op.drop_table("tag")
    op.drop_index("ix_post_author_id", "post")
    op.drop_index("ix_post_created", "post")

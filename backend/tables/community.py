from piccolo.columns import Boolean, ForeignKey, Integer, OnDelete, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from backend.tables.accounts import User
from backend.tables.checks import Check


class Post(Table, tablename="posts"):
    author = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    title = Varchar(length=200)
    body = Text()
    shared_check = ForeignKey(references=Check, on_delete=OnDelete.set_null, null=True)
    shared_photo = Boolean(default=False)
    image_file = Varchar(length=128, default="")
    hidden = Boolean(default=False, index=True)
    hidden_reason = Text(default="")
    like_count = Integer(default=0)
    comment_count = Integer(default=0)
    created_at = Timestamptz(default=TimestamptzNow(), index=True)
    updated_at = Timestamptz(null=True, default=None)


class Comment(Table, tablename="comments"):
    post = ForeignKey(references=Post, on_delete=OnDelete.cascade, index=True)
    author = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    body = Text()
    hidden = Boolean(default=False)
    created_at = Timestamptz(default=TimestamptzNow())


class PostLike(Table, tablename="post_likes"):
    post = ForeignKey(references=Post, on_delete=OnDelete.cascade, index=True)
    user = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    created_at = Timestamptz(default=TimestamptzNow())


class Report(Table, tablename="reports"):
    """A member's report of a post or comment, for the moderation queue."""

    reporter = ForeignKey(references=User, on_delete=OnDelete.cascade)
    post = ForeignKey(references=Post, on_delete=OnDelete.cascade, null=True)
    comment = ForeignKey(references=Comment, on_delete=OnDelete.cascade, null=True)
    reason = Text(default="")
    resolved = Boolean(default=False, index=True)
    created_at = Timestamptz(default=TimestamptzNow())

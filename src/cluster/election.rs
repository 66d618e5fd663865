//! Who leads: the session advisory lock, the `cluster_leader` row, takeover, heartbeats and
//! the fence every write transaction checks.
//!
//! A member leads while it holds [`SERVER_LOCK`] on a session of its own. Taking the lead:
//! 1. the lock (free when the leader died, since PostgreSQL ends a dead client's sessions;
//!    or freed by ending the sessions of a leader that stopped proving it is alive);
//! 2. every session of the member the row names is ended, so nothing it started can still
//!    hold the write lock or commit;
//! 3. under the write lock, the row names this member and its epoch goes up by one.
//!
//! The leader then proves it is alive every [`HEARTBEAT`]; when its row names another
//! member, or its lock session is lost and cannot be taken back, it stops the process.

use std::time::Duration;

use sea_orm::DbErr;
use sea_orm::sqlx::{self, Connection, PgConnection};
use serde::Serialize;
use tokio::sync::oneshot;

use super::{Member, Role, Seen, View};
use crate::db::{SERVER_LOCK, WRITE_LOCK};

/// How often the leader proves it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How often a follower looks for the leader, and tries to lead.
pub const FOLLOW: Duration = Duration::from_millis(500);

/// The fence: a row while the connection running it belongs to the leader.
pub const FENCE_SQL: &str = "SELECT 1 FROM cluster_leader \
     WHERE id = 1 AND member = current_setting('application_name')";

/// The error of a write transaction on a member that does not lead.
pub const NOT_LEADER: &str = "this member no longer leads the cluster";

fn db_err(e: sqlx::Error) -> DbErr {
    DbErr::Query(sea_orm::RuntimeErr::SqlxError(e.into()))
}

/// The leader as the row names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leader {
    pub member: String,
    pub url: String,
    pub epoch: i64,
}

/// A member as `GET /api/cluster` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct MemberRow {
    pub member: String,
    pub url: String,
    pub role: String,
    /// Unix microseconds.
    pub started_at: i64,
    /// Unix microseconds of its last heartbeat.
    pub seen_at: i64,
}

/// One member's side of the election.
#[derive(Clone, Debug)]
pub struct Election {
    /// The database URL, tagged with this member (see [`super::tagged_url`]).
    url: String,
    member: Member,
    failover: Duration,
}

/// The lead, held while it lives: dropping it (or [`Leadership::release`]) ends the
/// heartbeat and closes the lock session.
pub struct Leadership {
    pub epoch: i64,
    stop: Option<oneshot::Sender<()>>,
}

impl Leadership {
    /// Lets go of the lead (a clean stop).
    pub fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Election {
    /// `url` is the untagged database URL.
    pub fn new(url: &str, member: Member, failover: Duration) -> Election {
        Election {
            url: super::tagged_url(url, &member.id),
            member,
            failover,
        }
    }

    pub fn member(&self) -> &Member {
        &self.member
    }

    async fn connect(&self) -> Result<PgConnection, DbErr> {
        PgConnection::connect(&self.url).await.map_err(db_err)
    }

    /// Leads when no live member does; otherwise `None`.
    pub async fn try_lead(&self) -> Result<Option<Leadership>, DbErr> {
        let conn = self.connect().await?;
        match self.try_lead_on(conn).await? {
            Ok(leadership) => Ok(Some(leadership)),
            Err(conn) => {
                let _ = conn.close().await;
                Ok(None)
            }
        }
    }

    /// Tries to lead on `conn`: the lead, or the connection back.
    async fn try_lead_on(
        &self,
        mut conn: PgConnection,
    ) -> Result<Result<Leadership, PgConnection>, DbErr> {
        if !try_lock(&mut conn).await? {
            // A leader that stopped proving it is alive (paused, cut off) is deposed.
            let Some(stale) = self.stale_leader(&mut conn).await? else {
                return Ok(Err(conn));
            };
            tracing::warn!(
                leader = %stale,
                "the leader has not been seen for the failover time; taking over"
            );
            end_sessions(&mut conn, &stale).await?;
            let mut held = false;
            for _ in 0..20 {
                if try_lock(&mut conn).await? {
                    held = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if !held {
                return Ok(Err(conn));
            }
        }
        let epoch = self.take_over(&mut conn).await?;
        tracing::info!(member = %self.member.id, epoch, "leading the cluster");
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(self.clone().heartbeat(conn, stopped));
        Ok(Ok(Leadership {
            epoch,
            stop: Some(stop),
        }))
    }

    /// The member the row names, when it has not proven it is alive for the failover time.
    async fn stale_leader(&self, conn: &mut PgConnection) -> Result<Option<String>, DbErr> {
        sqlx::query_scalar::<_, String>(
            "SELECT member FROM cluster_leader WHERE id = 1 \
             AND heartbeat_at < now() - make_interval(secs => $1)",
        )
        .bind(self.failover.as_secs_f64())
        .fetch_optional(conn)
        .await
        .map_err(db_err)
    }

    /// With the lock held: ends the previous leader's sessions and names this member, under
    /// the write lock. Returns the new epoch.
    async fn take_over(&self, conn: &mut PgConnection) -> Result<i64, DbErr> {
        let before: Option<String> =
            sqlx::query_scalar("SELECT member FROM cluster_leader WHERE id = 1")
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_err)?;
        if let Some(before) = before.filter(|m| *m != self.member.id) {
            end_sessions(conn, &before).await?;
        }
        let mut txn = conn.begin().await.map_err(db_err)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *txn)
            .await
            .map_err(db_err)?;
        let epoch: i64 = sqlx::query_scalar(
            "INSERT INTO cluster_leader (id, member, url, epoch, heartbeat_at) \
             VALUES (1, $1, $2, 1, now()) \
             ON CONFLICT (id) DO UPDATE SET member = EXCLUDED.member, url = EXCLUDED.url, \
             epoch = cluster_leader.epoch + 1, heartbeat_at = now() \
             RETURNING epoch",
        )
        .bind(&self.member.id)
        .bind(&self.member.url)
        .fetch_one(&mut *txn)
        .await
        .map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        self.seen(conn, Role::Leader).await?;
        Ok(epoch)
    }

    /// Refreshes this member's `cluster_members` row.
    async fn seen(&self, conn: &mut PgConnection, role: Role) -> Result<(), DbErr> {
        let role = match role {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Single => "single",
        };
        sqlx::query(
            "INSERT INTO cluster_members (member, url, role, started_at, seen_at) \
             VALUES ($1, $2, $3, now(), now()) \
             ON CONFLICT (member) DO UPDATE SET url = EXCLUDED.url, role = EXCLUDED.role, \
             seen_at = now()",
        )
        .bind(&self.member.id)
        .bind(&self.member.url)
        .bind(role)
        .execute(conn)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// Proves the lead every [`HEARTBEAT`] until `stopped`; stops the process when the lead
    /// is lost.
    async fn heartbeat(self, mut conn: PgConnection, mut stopped: oneshot::Receiver<()>) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = tick.tick() => {}
            }
            let proved = sqlx::query(
                "UPDATE cluster_leader SET heartbeat_at = now() WHERE id = 1 AND member = $1",
            )
            .bind(&self.member.id)
            .execute(&mut conn)
            .await;
            match proved {
                Ok(done) if done.rows_affected() == 1 => {
                    let _ = self.seen(&mut conn, Role::Leader).await;
                    if let Err(e) = forget_gone(&mut conn).await {
                        tracing::debug!(error = %e, "cannot forget members gone");
                    }
                }
                Ok(_) => lost_the_lead("another member leads the cluster now"),
                Err(e) => {
                    tracing::warn!(error = %e, "lost the session holding the lead; taking it back");
                    match self.retake().await {
                        Ok(Some(c)) => conn = c,
                        Ok(None) => lost_the_lead("another member took the lead"),
                        // PostgreSQL is unreachable: writes fail anyway; try at the next tick.
                        Err(e) => tracing::warn!(error = %e, "cannot reach the database"),
                    }
                }
            }
        }
        let _ = self.release_on(&mut conn).await;
        let _ = conn.close().await;
    }

    /// After losing the lock session (PostgreSQL restarted): the lock again, if the row
    /// still names this member.
    async fn retake(&self) -> Result<Option<PgConnection>, DbErr> {
        let mut conn = self.connect().await?;
        if !try_lock(&mut conn).await? {
            return Ok(None);
        }
        let still = self.read_leader(&mut conn).await?;
        if still.is_some_and(|l| l.member == self.member.id) {
            Ok(Some(conn))
        } else {
            Ok(None)
        }
    }

    /// A clean stop: this member's row goes; the lock goes with the closed session, so a
    /// follower takes over at its next look.
    async fn release_on(&self, conn: &mut PgConnection) -> Result<(), DbErr> {
        sqlx::query("DELETE FROM cluster_members WHERE member = $1")
            .bind(&self.member.id)
            .execute(conn)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// The leader as the row names it.
    pub async fn read_leader(&self, conn: &mut PgConnection) -> Result<Option<Leader>, DbErr> {
        let row: Option<(String, String, i64)> =
            sqlx::query_as("SELECT member, url, epoch FROM cluster_leader WHERE id = 1")
                .fetch_optional(conn)
                .await
                .map_err(db_err)?;
        Ok(row.map(|(member, url, epoch)| Leader { member, url, epoch }))
    }

    /// Follows until this member leads: every [`FOLLOW`] it refreshes `view` with the
    /// leader the row names, refreshes its member row and tries to lead.
    pub async fn follow(&self, view: View) -> Leadership {
        let mut conn: Option<PgConnection> = None;
        let mut tick = tokio::time::interval(FOLLOW);
        loop {
            tick.tick().await;
            let c = match conn.take() {
                Some(c) => c,
                None => match self.connect().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot reach the database");
                        continue;
                    }
                },
            };
            match self.try_lead_on(c).await {
                Ok(Ok(leadership)) => return leadership,
                Ok(Err(mut c)) => {
                    if let Ok(Some(leader)) = self.read_leader(&mut c).await {
                        view.set(Seen {
                            role: Role::Follower,
                            leader: leader.url,
                            epoch: leader.epoch,
                        });
                    }
                    let _ = self.seen(&mut c, Role::Follower).await;
                    conn = Some(c);
                }
                // The connection is dropped; a new one next time.
                Err(e) => tracing::warn!(error = %e, "cannot take part in the election"),
            }
        }
    }

    /// The members seen within the failover time (plus two heartbeats), leader first; the
    /// role is what the leadership row says.
    pub async fn members(&self) -> Result<Vec<MemberRow>, DbErr> {
        let mut conn = self.connect().await?;
        let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT m.member, m.url, \
             CASE WHEN l.member = m.member THEN 'leader' ELSE 'follower' END, \
             (extract(epoch FROM m.started_at) * 1000000)::bigint, \
             (extract(epoch FROM m.seen_at) * 1000000)::bigint \
             FROM cluster_members m LEFT JOIN cluster_leader l ON l.id = 1 \
             WHERE m.seen_at > now() - make_interval(secs => $1) \
             ORDER BY (l.member = m.member) DESC NULLS LAST, m.started_at",
        )
        .bind(self.failover.as_secs_f64() + 2.0 * HEARTBEAT.as_secs_f64())
        .fetch_all(&mut conn)
        .await
        .map_err(db_err)?;
        let _ = conn.close().await;
        Ok(rows
            .into_iter()
            .map(|(member, url, role, started_at, seen_at)| MemberRow {
                member,
                url,
                role,
                started_at,
                seen_at,
            })
            .collect())
    }

    /// Removes this member's row (a follower's clean stop).
    pub async fn leave(&self) {
        if let Ok(mut conn) = self.connect().await {
            let _ = self.release_on(&mut conn).await;
            let _ = conn.close().await;
        }
    }
}

fn lost_the_lead(why: &str) -> ! {
    tracing::error!("{why}; stopping so that two members never write");
    std::process::exit(1);
}

async fn try_lock(conn: &mut PgConnection) -> Result<bool, DbErr> {
    sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
        .bind(SERVER_LOCK)
        .fetch_one(conn)
        .await
        .map_err(db_err)
}

/// Ends every session of `member` on this database.
async fn end_sessions(conn: &mut PgConnection, member: &str) -> Result<(), DbErr> {
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND datname = current_database() \
         AND pid <> pg_backend_pid()",
    )
    .bind(member)
    .fetch_all(conn)
    .await
    .map_err(db_err)?;
    if !ended.is_empty() {
        tracing::warn!(
            member,
            sessions = ended.len(),
            "ended the sessions of the previous leader"
        );
    }
    Ok(())
}

/// Removes member rows not seen for an hour.
async fn forget_gone(conn: &mut PgConnection) -> Result<(), DbErr> {
    sqlx::query("DELETE FROM cluster_members WHERE seen_at < now() - interval '1 hour'")
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

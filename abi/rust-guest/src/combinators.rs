//! Waiting for several operations at once: all of them ([`join`]) or the first ([`select`]).
//!
//! A step that ends pending inside a `join` (and in no `select`) tells the runtime to wake the
//! process only when all its outstanding operations have completed (wait-all); any `select`
//! pending makes it wait-any. Nesting works either way: `select(join(a, b), c)` wakes on `c`.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use crate::plugin::{WANTS_ALL, WANTS_ANY, wants};

/// Which of two futures finished first.
#[derive(Debug, PartialEq, Eq)]
pub enum Either<A, B> {
    /// The first future's output.
    Left(A),
    /// The second future's output.
    Right(B),
}

/// Waits for whichever of `a` and `b` completes first (wait-any) and drops the other: an
/// abandoned receive puts a message it already took back in the mailbox. When both are ready,
/// `a` wins.
pub async fn select<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    poll_fn(move |t| {
        if let Poll::Ready(v) = a.as_mut().poll(t) {
            return Poll::Ready(Either::Left(v));
        }
        if let Poll::Ready(v) = b.as_mut().poll(t) {
            return Poll::Ready(Either::Right(v));
        }
        wants(WANTS_ANY);
        Poll::Pending
    })
    .await
}

/// Waits for both `a` and `b` (wait-all) and returns both outputs.
pub async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut ra, mut rb) = (None, None);
    poll_fn(move |t| {
        if ra.is_none()
            && let Poll::Ready(v) = a.as_mut().poll(t)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let Poll::Ready(v) = b.as_mut().poll(t)
        {
            rb = Some(v);
        }
        match (ra.take(), rb.take()) {
            (Some(x), Some(y)) => Poll::Ready((x, y)),
            (x, y) => {
                (ra, rb) = (x, y);
                wants(WANTS_ALL);
                Poll::Pending
            }
        }
    })
    .await
}

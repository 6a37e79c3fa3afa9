//! Waiting for several operations at once: all of them ([`join`]) or the first ([`select`]).
//!
//! A step that ends pending inside a `join` (and in no `select`) tells the runtime to wake the
//! process only when all its outstanding operations have completed (wait-all); any `select`
//! pending makes it wait-any. Nesting works either way: `select(join(a, b), c)` wakes on `c`.
//!
//! Both are plain futures holding the two they wait for, not `async fn`s: an `async fn` keeps
//! its arguments and its pinned copies of them in separate parts of its state, so a `select`
//! of two `select`s was four times the size of what it waits for, and a process's future, which
//! is allocated whole when it starts, with it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

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
pub fn select<A: Future, B: Future>(a: A, b: B) -> Select<A, B> {
    Select { a: Some(a), b: Some(b) }
}

/// Waits for both `a` and `b` (wait-all) and returns both outputs.
pub fn join<A: Future, B: Future>(a: A, b: B) -> Join<A, B> {
    Join { a: Some(a), b: Some(b), ra: None, rb: None }
}

/// See [`select`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Select<A, B> {
    a: Option<A>,
    b: Option<B>,
}

/// See [`join`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Join<A: Future, B: Future> {
    a: Option<A>,
    b: Option<B>,
    ra: Option<A::Output>,
    rb: Option<B::Output>,
}

/// The two futures of a combinator, pinned where they are. Structural pinning: they are never
/// moved out of their fields, only dropped in place (`Pin::set(None)`), and the combinators
/// have no `Drop` of their own and are `Unpin` only when both futures are.
fn project<'a, A, B>(
    a: &'a mut Option<A>,
    b: &'a mut Option<B>,
) -> (Pin<&'a mut Option<A>>, Pin<&'a mut Option<B>>) {
    // SAFETY: see above; the caller got `a` and `b` from a pinned combinator.
    unsafe { (Pin::new_unchecked(a), Pin::new_unchecked(b)) }
}

/// Polls the future in `slot`, if it is still there; drops it in place once it is done.
fn poll_slot<F: Future>(mut slot: Pin<&mut Option<F>>, t: &mut Context<'_>) -> Poll<F::Output> {
    let Some(f) = slot.as_mut().as_pin_mut() else { return Poll::Pending };
    let polled = f.poll(t);
    if polled.is_ready() {
        slot.set(None);
    }
    polled
}

impl<A: Future, B: Future> Future for Select<A, B> {
    type Output = Either<A::Output, B::Output>;

    fn poll(self: Pin<&mut Self>, t: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: only projected, never moved (see `project`).
        let this = unsafe { self.get_unchecked_mut() };
        let (mut a, mut b) = project(&mut this.a, &mut this.b);
        if let Poll::Ready(v) = poll_slot(a.as_mut(), t) {
            b.set(None);
            return Poll::Ready(Either::Left(v));
        }
        if let Poll::Ready(v) = poll_slot(b.as_mut(), t) {
            a.set(None);
            return Poll::Ready(Either::Right(v));
        }
        wants(WANTS_ANY);
        Poll::Pending
    }
}

impl<A: Future, B: Future> Future for Join<A, B> {
    type Output = (A::Output, B::Output);

    fn poll(self: Pin<&mut Self>, t: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: only projected, never moved (see `project`); the outputs are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let (a, b) = project(&mut this.a, &mut this.b);
        if let Poll::Ready(v) = poll_slot(a, t) {
            this.ra = Some(v);
        }
        if let Poll::Ready(v) = poll_slot(b, t) {
            this.rb = Some(v);
        }
        if this.ra.is_some() && this.rb.is_some() {
            return Poll::Ready((this.ra.take().expect("ready"), this.rb.take().expect("ready")));
        }
        wants(WANTS_ALL);
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::future::{Future, Ready, ready};
    use std::pin::pin;
    use std::rc::Rc;
    use std::task::{Context, Poll, Waker};

    use super::{Either, join, select};

    /// Pending for `polls` polls, then ready with `value`; notes when it is dropped.
    struct After {
        polls: u32,
        value: u32,
        dropped: Rc<Cell<bool>>,
    }

    impl Future for After {
        type Output = u32;
        fn poll(mut self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u32> {
            if self.polls == 0 {
                return Poll::Ready(self.value);
            }
            self.polls -= 1;
            Poll::Pending
        }
    }

    impl Drop for After {
        fn drop(&mut self) {
            self.dropped.set(true);
        }
    }

    fn after(polls: u32, value: u32) -> (After, Rc<Cell<bool>>) {
        let dropped = Rc::new(Cell::new(false));
        (After { polls, value, dropped: dropped.clone() }, dropped)
    }

    fn poll<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn select_takes_the_first_ready_and_drops_the_other_at_once() {
        let (a, a_dropped) = after(2, 1);
        let (b, b_dropped) = after(1, 2);
        let mut s = pin!(select(a, b));
        assert_eq!(poll(s.as_mut()), Poll::Pending);
        assert_eq!(poll(s.as_mut()), Poll::Ready(Either::Right(2)));
        // The loser goes when the winner is handed out, not when the select is dropped.
        assert!(a_dropped.get() && b_dropped.get());
    }

    #[test]
    fn select_prefers_the_first_when_both_are_ready() {
        let mut s = pin!(select(ready(1), ready(2)));
        assert_eq!(poll(s.as_mut()), Poll::Ready(Either::Left(1)));
    }

    #[test]
    fn join_waits_for_both_and_drops_each_when_done() {
        let (a, a_dropped) = after(0, 1);
        let (b, b_dropped) = after(2, 2);
        let mut j = pin!(join(a, b));
        assert_eq!(poll(j.as_mut()), Poll::Pending);
        assert!(a_dropped.get() && !b_dropped.get(), "a finished first");
        assert_eq!(poll(j.as_mut()), Poll::Pending);
        assert_eq!(poll(j.as_mut()), Poll::Ready((1, 2)));
        assert!(b_dropped.get());
    }

    /// A combinator is about the size of the two futures it waits for: a process's future,
    /// allocated whole when it starts, holds every combinator it may wait in.
    #[test]
    fn combinators_are_about_the_size_of_their_futures() {
        type F = Ready<[u64; 8]>;
        let two = 2 * size_of::<F>();
        assert!(size_of::<super::Select<F, F>>() <= two + 16);
        assert!(size_of::<super::Select<super::Select<F, F>, F>>() <= two + size_of::<F>() + 32);
        assert!(size_of::<super::Join<F, F>>() <= 2 * two + 32, "the outputs are kept too");
    }
}

%% Erlang/OTP side of Spindle's side-by-side actor benchmark.
%%
%% Run with exactly two schedulers (`erl +S 2:2`); bench/erlang/run.sh does
%% this. Each figure is printed as one line:
%%
%%   RESULT erlang <bench> <value> <unit> <method text...>
%%
%% Workloads (Spindle's Rust harness runs the same ones):
%%   spawn_exit   N=200000 children each send `done` to the parent and exit;
%%                children per second, best of 3.
%%   ring         R=1000 processes pass one token M=1000 rounds (1000000
%%                hops); the process that ends it reports to the parent.
%%                Hops per second, best of 3, ring setup not timed.
%%   ping_pong    two processes do K=200000 round trips; mean round-trip
%%                time in microseconds, best of 3.
%%   idle_memory  N=100000 processes blocked in `receive`; OS resident
%%                memory (VmRSS) delta per process, and the VM's own
%%                erlang:memory(processes) delta per process.
%%   timers       N=100000 processes each wait 1000 ms then send `done`;
%%                wall time from the first spawn to the last `done`, and
%%                that time minus 1000 ms.
%%   fairness     B=2 processes spin forever on arithmetic while two other
%%                processes do K=2000 round trips; mean and p99 round trip.
%%
%% The measuring (parent) process keeps its message queue off its heap
%% (`message_queue_data = off_heap`, OTP's documented setting for processes
%% that receive many messages): spawn_exit and timers deliver 100000+
%% messages to it, and with the default on-heap queue every garbage
%% collection of the parent copies the whole backlog, which makes those
%% figures measure that collector pathology instead of the runtime.
-module(spindle_bench).

-export([main/1]).

-define(SPAWN_N, 200000).
-define(RING_SIZE, 1000).
-define(RING_ROUNDS, 1000).
-define(PING_PONG_K, 200000).
-define(IDLE_N, 100000).
-define(TIMER_N, 100000).
-define(TIMER_MS, 1000).
-define(BUSY_B, 2).
-define(FAIR_K, 2000).
-define(RUNS, 3).
-define(SETTLE_MS, 500).

main(_Args) ->
    try
        case erlang:system_info(schedulers_online) of
            2 -> ok;
            S -> error({expected_2_schedulers_online, S})
        end,
        process_flag(message_queue_data, off_heap),
        run_all(),
        erlang:halt(0)
    catch
        Class:Reason:Stack ->
            io:format(standard_error, "spindle_bench failed: ~p:~p~n~p~n",
                      [Class, Reason, Stack]),
            erlang:halt(1)
    end.

run_all() ->
    result(otp_release, erlang:system_info(otp_release), "-",
           "OTP release (erts " ++ erlang:system_info(version) ++ ")"),
    spawn_exit(),
    ring(),
    ping_pong(),
    idle_memory(),
    timers(),
    fairness().

%% ---------------------------------------------------------------- spawn_exit

spawn_exit() ->
    Best = lists:max([spawn_exit_once(?SPAWN_N) || _ <- lists:seq(1, ?RUNS)]),
    result(spawn_exit, fmt(Best, 0), "per_s",
           "N=200000 children each send done to the parent and exit; "
           "parent queue off_heap; best of 3").

spawn_exit_once(N) ->
    prepare(),
    Parent = self(),
    T0 = now_us(),
    spawn_children(N, Parent),
    receive_n(done, N),
    N / secs_since(T0).

spawn_children(0, _Parent) ->
    ok;
spawn_children(N, Parent) ->
    spawn(fun() -> Parent ! done end),
    spawn_children(N - 1, Parent).

%% ---------------------------------------------------------------------- ring

ring() ->
    Hops = ?RING_SIZE * ?RING_ROUNDS,
    Best = lists:max([ring_once(?RING_SIZE, Hops) || _ <- lists:seq(1, ?RUNS)]),
    result(ring, fmt(Best, 0), "msgs_per_s",
           "R=1000 processes, one token passed M=1000 rounds (1000000 hops); "
           "setup excluded; best of 3").

ring_once(Size, Hops) ->
    prepare(),
    Parent = self(),
    Nodes = [spawn(fun() -> ring_init(Parent) end) || _ <- lists:seq(1, Size)],
    Nexts = tl(Nodes) ++ [hd(Nodes)],
    lists:foreach(fun({Node, Next}) -> Node ! {next, Next} end,
                  lists:zip(Nodes, Nexts)),
    receive_n(ready, Size),
    T0 = now_us(),
    hd(Nodes) ! {token, Hops},
    receive ring_done -> ok end,
    Rate = Hops / secs_since(T0),
    kill_all(Nodes),
    Rate.

ring_init(Parent) ->
    receive {next, Next} -> ok end,
    Parent ! ready,
    ring_node(Parent, Next).

%% The token carries the number of hops still to make; whoever receives it
%% at zero reports to the parent.
ring_node(Parent, Next) ->
    receive
        {token, 0} ->
            Parent ! ring_done,
            ring_node(Parent, Next);
        {token, Left} ->
            Next ! {token, Left - 1},
            ring_node(Parent, Next)
    end.

%% ----------------------------------------------------------------- ping_pong

ping_pong() ->
    Best = lists:min([ping_pong_once(?PING_PONG_K) || _ <- lists:seq(1, ?RUNS)]),
    result(ping_pong, fmt(Best, 3), "us_per_rtt",
           "K=200000 round trips between two processes; mean; best of 3").

ping_pong_once(K) ->
    prepare(),
    Parent = self(),
    Ponger = spawn(fun ponger/0),
    spawn(fun() ->
                  T0 = now_us(),
                  pinger(Ponger, K),
                  Parent ! {ping_pong_us, now_us() - T0}
          end),
    receive {ping_pong_us, Us} -> ok end,
    exit(Ponger, kill),
    Us / K.

pinger(_Ponger, 0) ->
    ok;
pinger(Ponger, K) ->
    Ponger ! {ping, self()},
    receive pong -> ok end,
    pinger(Ponger, K - 1).

ponger() ->
    receive
        {ping, From} ->
            From ! pong,
            ponger()
    end.

%% --------------------------------------------------------------- idle_memory

idle_memory() ->
    N = ?IDLE_N,
    prepare(),
    timer:sleep(?SETTLE_MS),
    Rss0 = rss_bytes(),
    Vm0 = erlang:memory(processes),
    Pids = [spawn(fun idle/0) || _ <- lists:seq(1, N)],
    garbage_collect(),
    timer:sleep(?SETTLE_MS),
    Rss1 = rss_bytes(),
    Vm1 = erlang:memory(processes),
    kill_all(Pids),
    result(idle_memory, fmt((Rss1 - Rss0) / N, 1), "bytes_per_process",
           "N=100000 processes blocked in receive; OS VmRSS delta / N "
           "after GC and 500 ms settle"),
    result(idle_memory_vm, fmt((Vm1 - Vm0) / N, 1), "bytes_per_process",
           "N=100000 processes blocked in receive; "
           "erlang:memory(processes) delta / N").

idle() ->
    receive stop -> ok end.

rss_bytes() ->
    {ok, Status} = file:read_file("/proc/" ++ os:getpid() ++ "/status"),
    Lines = binary:split(Status, <<"\n">>, [global]),
    [Line] = [L || <<"VmRSS:", _/binary>> = L <- Lines],
    [<<"VmRSS:">>, Kb, <<"kB">>] =
        binary:split(Line, [<<" ">>, <<"\t">>], [global, trim_all]),
    binary_to_integer(Kb) * 1024.

%% -------------------------------------------------------------------- timers

timers() ->
    N = ?TIMER_N,
    prepare(),
    Parent = self(),
    T0 = now_us(),
    spawn_sleepers(N, Parent),
    receive_n(done, N),
    Ms = (now_us() - T0) / 1000,
    result(timers, fmt(Ms, 1), "ms",
           "N=100000 processes each receive after 1000 ms then send done; "
           "first spawn to last done; parent queue off_heap"),
    result(timers_overshoot, fmt(Ms - ?TIMER_MS, 1), "ms",
           "timers wall time minus 1000 ms").

spawn_sleepers(0, _Parent) ->
    ok;
spawn_sleepers(N, Parent) ->
    spawn(fun() ->
                  receive after ?TIMER_MS -> ok end,
                  Parent ! done
          end),
    spawn_sleepers(N - 1, Parent).

%% ------------------------------------------------------------------ fairness

fairness() ->
    prepare(),
    Parent = self(),
    Busy = [spawn(fun() -> busy(I) end) || I <- lists:seq(1, ?BUSY_B)],
    Ponger = spawn(fun ponger/0),
    spawn(fun() -> Parent ! {rtts, timed_pings(Ponger, ?FAIR_K, [])} end),
    Rtts = receive {rtts, R} -> R end,
    kill_all([Ponger | Busy]),
    K = length(Rtts),
    MeanUs = lists:sum(Rtts) / K / 1000,
    P99Us = lists:nth(ceil(0.99 * K), lists:sort(Rtts)) / 1000,
    result(fairness_rtt_mean, fmt(MeanUs, 3), "us_per_rtt",
           "B=2 busy loops on 2 schedulers; K=2000 ping-pong round trips "
           "between two other processes; mean"),
    result(fairness_rtt_p99, fmt(P99Us, 3), "us",
           "B=2 busy loops on 2 schedulers; K=2000 ping-pong round trips "
           "between two other processes; 99th percentile").

%% Round-trip times in nanoseconds.
timed_pings(_Ponger, 0, Acc) ->
    Acc;
timed_pings(Ponger, K, Acc) ->
    T0 = erlang:monotonic_time(nanosecond),
    Ponger ! {ping, self()},
    receive pong -> ok end,
    timed_pings(Ponger, K - 1, [erlang:monotonic_time(nanosecond) - T0 | Acc]).

%% Spins forever on small-integer arithmetic and never receives.
busy(X) ->
    busy((X * 75 + 74) rem 65537).

%% ------------------------------------------------------------------- helpers

%% Start each measurement from a clean, compacted parent.
prepare() ->
    flush(),
    garbage_collect().

flush() ->
    receive _ -> flush() after 0 -> ok end.

receive_n(_Msg, 0) ->
    ok;
receive_n(Msg, N) ->
    receive Msg -> receive_n(Msg, N - 1) end.

%% Kill the given processes and wait until they are all gone.
kill_all(Pids) ->
    lists:foreach(fun(P) -> monitor(process, P) end, Pids),
    lists:foreach(fun(P) -> exit(P, kill) end, Pids),
    lists:foreach(fun(_) -> receive {'DOWN', _, process, _, _} -> ok end end,
                  Pids).

now_us() ->
    erlang:monotonic_time(microsecond).

secs_since(T0) ->
    (now_us() - T0) / 1.0e6.

fmt(Value, 0) ->
    integer_to_list(round(Value));
fmt(Value, Decimals) ->
    float_to_list(float(Value), [{decimals, Decimals}]).

result(Bench, Value, Unit, Method) ->
    io:format("RESULT erlang ~s ~s ~s ~s~n", [Bench, Value, Unit, Method]).

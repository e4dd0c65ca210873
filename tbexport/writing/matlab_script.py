"""A MATLAB ``.m`` script that loads a tbexport ``.mat`` and plots every tag.

One panel per tag, titled with the tag as logged; one colour per run (the same in
every panel), raw values solid, or faint under the smoothed values where the file
has them; a legend of the runs (one entry each) where the file holds several (or
statistics); a marker on every point that has no neighbour to draw a line to (a
series of one point, a point between NaNs). The same text runs in MATLAB and in
Octave: names are set as properties with no TeX (``Interpreter`` ``none``), never
passed where ``legend`` or ``title`` would read them as options.
"""

from __future__ import annotations

import re
from pathlib import Path

from tbexport.options import WriteOptions

_LOAD = """\
%% Plots every tag in {comment} (written by tbexport): one panel per tag.
%% Run it from anywhere: it loads the .mat file that sits beside it.
name = {mat};
data = load(fullfile(fileparts(mfilename('fullpath')), name));
tags = data.tbexport_tags;              % {{original tag, variable name}}
several = isfield(data, 'tbexport_runs');
if several
    runs = data.tbexport_runs;          % {{run name, variable name, directory}}
end
colours = get(0, 'DefaultAxesColorOrder');
n = size(tags, 1);
ncols = ceil(sqrt(n));
nrows = ceil(n / ncols);
figure('Name', name);
% gnuplot (Octave's toolkit without a display) takes a double quote in a legend
% entry for the end of its own string: such names are drawn with '' instead
quotes = exist('OCTAVE_VERSION', 'builtin') && strcmp(graphics_toolkit(), 'gnuplot');
legended = {{}};                        % the runs a legend shows so far
for k = 1:n
    ax = subplot(nrows, ncols, k);
    hold(ax, 'on');
    series = cell(0, 5);                % {{step, value, smoothed or [], name, colour}}
"""

_LONG = """\
    if ~several                         % one run: the tag structs are the file's variables
        s = data.(tags{k, 2});
        z = [];
        if isfield(s, 'value_smoothed')
            z = s.value_smoothed;
        end
        series(1, :) = {s.step, s.value, z, 'value', 1};
    elseif isfield(data, 'stats')       % --reduce: mean (and median) over a band
        st = data.stats;
        t = tags{k, 2};
        band = {};                      % {low, high, label}: std around the mean, else min-max
        if isfield(st, 'mean') && isfield(st.mean, t) && isfield(st, 'std') && isfield(st.std, t)
            band = {st.mean.(t).step, st.mean.(t).value - st.std.(t).value, ...
                    st.mean.(t).value + st.std.(t).value, 'mean +/- std'};
        elseif isfield(st, 'min') && isfield(st.min, t) && isfield(st, 'max') && isfield(st.max, t)
            band = {st.min.(t).step, st.min.(t).value, st.max.(t).value, 'min to max'};
        end
        if ~isempty(band)
            [x, lo, hi, label] = band{:};
            ok = isfinite(lo) & isfinite(hi);
            x = x(ok); lo = lo(ok); hi = hi(ok);
            shade = 1 - 0.3 * (1 - colours(1, :));
            if numel(x) > 10             % an area; few points: a bar at each
                fill(ax, [x; flipud(x)], [lo; flipud(hi)], shade, 'EdgeColor', 'none', ...
                     'DisplayName', label);
            else
                for p = 1:numel(x)
                    h = plot(ax, [x(p) x(p)], [lo(p) hi(p)], 'Color', shade, 'LineWidth', 3, ...
                             'HandleVisibility', 'off');
                end
                if numel(x)
                    set(h, 'DisplayName', label, 'HandleVisibility', 'on');
                end
            end
        end
        names = {'mean', 'median'};     % (count is no value: not drawn; the rest is the band)
        for r = 1:numel(names)
            if isfield(st, names{r}) && isfield(st.(names{r}), t)
                s = st.(names{r}).(t);
                z = [];
                if isfield(s, 'value_smoothed')
                    z = s.value_smoothed;
                end
                series(end + 1, :) = {s.step, s.value, z, names{r}, r};
            end
        end
    else                                % a struct per run
        holder = data;
        for r = 1:size(runs, 1)
            one = holder.(runs{r, 2});
            if isfield(one, tags{k, 2})
                s = one.(tags{k, 2});
                z = [];
                if isfield(s, 'value_smoothed')
                    z = s.value_smoothed;
                end
                series(end + 1, :) = {s.step, s.value, z, runs{r, 1}, r};
            end
        end
    end
"""

_WIDE = """\
    s = data.(tags{k, 2});
    for r = 1:numel(s.runs)             % one column per run; NaN where a run has no point
        ok = logical(s.logged(:, r));   % its own points (runs logged at other steps
        z = [];                         % would draw nothing)
        if isfield(s, 'value_smoothed')
            z = s.value_smoothed(ok, r);
        end
        c = find(strcmp(runs(:, 1), s.runs{r}), 1);
        series(end + 1, :) = {s.step(ok), s.value(ok, r), z, s.runs{r}, c};
    end
"""

_DRAW = """\
    for r = 1:size(series, 1)
        [x, y, z, label, c] = series{r, :};
        colour = colours(mod(c - 1, size(colours, 1)) + 1, :);
        if isempty(z)
            layers = {y, colour, 1};    % {values, colour, line width}
        else                            % raw values faint, smoothed solid
            layers = {y, 1 - 0.4 * (1 - colour), 0.5; z, colour, 1.5};
        end
        for m = 1:size(layers, 1)
            [v, shade, lw] = layers{m, :};
            h = plot(ax, x, v, 'Color', shade, 'LineWidth', lw, 'HandleVisibility', 'off');
            % a point with no finite neighbour draws no line: mark it
            fin = isfinite(v(:));
            lone = fin & ~[false; fin(1:end - 1)] & ~[fin(2:end); false];
            if any(lone) && all(lone(fin))
                set(h, 'Marker', 'o', 'MarkerSize', 4);
            elseif any(lone)
                plot(ax, x(lone), v(lone), 'LineStyle', 'none', 'Marker', 'o', ...
                     'MarkerSize', 4, 'Color', shade, 'HandleVisibility', 'off');
            end
        end
        if quotes
            label = strrep(label, '"', "'");
        end
        set(h, 'DisplayName', label, 'HandleVisibility', 'on');  % the legend's line
    end
    % a legend on the first panel, and on any other with a run the legends lack
    fresh = ~isempty(series) && ~isempty(setdiff(series(:, 4), legended));
    if several && fresh
        legended = union(legended, series(:, 4));
        lgd = legend(ax, 'show');
        set(lgd, 'Interpreter', 'none');
        if ~exist('OCTAVE_VERSION', 'builtin')  % (Octave has no 'best')
            set(lgd, 'Location', 'best');
        end
    end
    set(get(ax, 'Title'), 'String', tags{k, 1}, 'Interpreter', 'none');
    xlabel(ax, 'step');
    grid(ax, 'on');
    hold(ax, 'off');
end
"""

_UNQUOTABLE = re.compile(r"[\x00-\x1f\x7f]+")


def literal(text: str) -> str:
    """``text`` as a MATLAB expression: a quoted char vector (a quote doubled), with
    the characters a literal cannot hold (newline, tab, other controls) as ``char(N)``:
    ``['a' char(10) 'b']``. Other text stays as it is (the file is UTF-8)."""
    pieces: list[str] = []
    position = 0
    for match in _UNQUOTABLE.finditer(text):
        if match.start() > position:
            pieces.append(_quoted(text[position : match.start()]))
        codes = " ".join(str(ord(c)) for c in match.group())
        pieces.append(f"char({codes})" if len(match.group()) == 1 else f"char([{codes}])")
        position = match.end()
    if position < len(text) or not pieces:
        pieces.append(_quoted(text[position:]))
    return pieces[0] if len(pieces) == 1 else "[" + " ".join(pieces) + "]"


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def script(mat_path: Path, runs: int, options: WriteOptions) -> str:
    """The text of the ``.m`` file for ``mat_path`` (``runs``: how many it holds; the
    script itself tells one run from several, and statistics, by the file)."""
    del runs  # (the .mat says it: tbexport_runs, stats)
    body = _WIDE if options.layout == "wide" else _LONG
    comment = _UNQUOTABLE.sub(" ", mat_path.name)  # (a newline would end the comment)
    return _LOAD.format(mat=literal(mat_path.name), comment=comment) + body + _DRAW

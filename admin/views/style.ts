/** The dashboard's whole stylesheet, inlined into every page (no build step, no static files). */
export const CSS = `
:root{--bg:#f5f6f8;--surface:#fff;--border:#e3e6ea;--text:#1d232b;--muted:#667085;--faint:#98a2b3;
--primary:#2f5bea;--primary-h:#2447c4;--danger:#c9321f;--danger-h:#a82816;--warn:#b54708;--ok:#067647;
--head:#101828;--row:#f9fafb;--code:#f2f4f7;--shadow:0 1px 2px rgba(16,24,40,.06);
--waiting-bg:#eef4ff;--waiting:#3538cd;--active-bg:#fff4e5;--active:#b93815;--delayed-bg:#f4f3ff;--delayed:#5925dc;
--completed-bg:#ecfdf3;--completed:#067647;--failed-bg:#fef3f2;--failed:#b42318;--cancelled-bg:#f2f4f7;--cancelled:#475467;
--aborted-bg:#fdf2fa;--aborted:#c11574}
@media (prefers-color-scheme:dark){:root{--bg:#0f1420;--surface:#161c2a;--border:#273043;--text:#e4e7ec;--muted:#98a2b3;--faint:#667085;
--primary:#6c8cff;--primary-h:#8aa4ff;--danger:#f0604d;--danger-h:#ff7a68;--head:#0a0e17;--row:#1b2233;--code:#111827;
--waiting-bg:#1e2550;--waiting:#a4bcfd;--active-bg:#3d2410;--active:#fdb022;--delayed-bg:#2a1f55;--delayed:#bdb4fe;
--completed-bg:#0f3324;--completed:#75e0a7;--failed-bg:#45140f;--failed:#fda29b;--cancelled-bg:#262d3b;--cancelled:#cfd4dc;
--aborted-bg:#441335;--aborted:#faa7e0}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--text);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
a{color:var(--primary);text-decoration:none}a:hover{text-decoration:underline}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.wrap{max-width:1240px;margin:0 auto;padding:0 24px}
header.top{background:var(--head);color:#fff}
header.top .wrap{display:flex;align-items:center;gap:28px;height:56px}
.brand{display:flex;align-items:center;gap:9px;color:#fff;font-weight:650;font-size:16px;letter-spacing:.2px}
.brand:hover{text-decoration:none}
.brand svg{display:block}
nav.main{display:flex;gap:4px}
nav.main a{color:#cbd2dd;padding:6px 12px;border-radius:6px;font-weight:500}
nav.main a:hover{background:rgba(255,255,255,.08);color:#fff;text-decoration:none}
nav.main a.on{background:rgba(255,255,255,.13);color:#fff}
.spacer{flex:1}
.meta{color:#98a2b3;font-size:12.5px;display:flex;align-items:center;gap:14px}
.meta form{margin:0}
.meta button{white-space:nowrap;background:none;border:1px solid #344054;color:#cbd2dd;border-radius:6px;padding:4px 10px;font:inherit;cursor:pointer}
.meta button:hover{border-color:#667085;color:#fff}
.live{display:inline-flex;align-items:center;gap:6px}
.live i{width:8px;height:8px;border-radius:50%;background:#667085;display:inline-block}
.live.on i{background:#32d583;box-shadow:0 0 0 3px rgba(50,213,131,.2)}
.live.off i{background:#f79009}
main.wrap{padding-top:26px;padding-bottom:60px}
@media (max-width:700px){td{white-space:nowrap}.wrap{padding:0 14px}header.top .wrap{gap:14px}.meta .prefix{display:none}nav.main a{padding:6px 8px}.brand span{display:none}}
@media (max-width:420px){.meta .live span{display:none}}
h1{font-size:22px;line-height:1.3;margin:0;font-weight:650;letter-spacing:-.2px;word-break:break-all}
h2{font-size:15px;margin:0;font-weight:600}
h1.id{font-size:17px;font-weight:600}
.pagehead{display:flex;align-items:center;gap:14px;flex-wrap:wrap;margin-bottom:20px}
.pagehead .sub{color:var(--muted)}
.crumbs{color:var(--muted);font-size:13px;margin-bottom:6px}
.crumbs a{color:var(--muted)}
.card{background:var(--surface);border:1px solid var(--border);border-radius:10px;box-shadow:var(--shadow)}
.card+.card,.card+.grid,.grid+.card{margin-top:20px}
.card.warning{padding:12px 18px;margin-bottom:20px;border-color:#d97706;background:#fffbeb;color:#92400e;font-weight:500}
.grid>.card+.card{margin-top:0}
.card>header{display:flex;align-items:center;gap:12px;padding:14px 18px;border-bottom:1px solid var(--border)}
.card>header .spacer{flex:1}
.card .body{padding:16px 18px}
.grid{display:grid;gap:16px}
.stats{grid-template-columns:repeat(auto-fit,minmax(150px,1fr));margin-bottom:20px}
.stat{padding:14px 18px}
.stat .k{color:var(--muted);font-size:12px;font-weight:500;text-transform:uppercase;letter-spacing:.5px}
.stat .v{font-size:26px;font-weight:650;margin-top:2px;font-variant-numeric:tabular-nums}
.stat .v small{font-size:13px;color:var(--muted);font-weight:500}
.two{grid-template-columns:minmax(0,3fr) minmax(0,2fr)}
@media (max-width:900px){.two{grid-template-columns:1fr}}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:10px 14px;border-bottom:1px solid var(--border);vertical-align:middle}
th{font-size:11.5px;font-weight:600;color:var(--muted);text-transform:uppercase;letter-spacing:.5px;background:var(--row);white-space:nowrap}
tbody tr:last-child td{border-bottom:0}
tbody tr:hover td{background:var(--row)}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.zero a,td.zero{color:var(--faint)}
td.actions{text-align:right;white-space:nowrap}
td.id,td.nowrap{white-space:nowrap}
td .err{color:var(--failed);max-width:320px;display:inline-block;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;vertical-align:bottom}
.scroll{overflow-x:auto}
.id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.muted{color:var(--muted)}
.badge{display:inline-flex;align-items:center;gap:5px;padding:2px 9px;border-radius:999px;font-size:12px;font-weight:600;line-height:18px;white-space:nowrap;background:var(--cancelled-bg);color:var(--cancelled)}
.chart{margin:0;padding:12px 16px}.chart svg{width:100%;height:120px;display:block}.chart .axis{stroke:var(--border,#ddd);stroke-width:1}.chart .ok{fill:#2e9d5b}.chart .bad{fill:#d64545}.chart figcaption{font-size:12px;color:var(--muted,#666);margin-top:6px}
.search{display:flex;flex-wrap:wrap;gap:8px;align-items:end;padding:10px 16px;border-bottom:1px solid var(--border,#eee)}.search label{display:flex;flex-direction:column;font-size:12px;gap:2px}.search input{min-width:0}.bulk{padding:8px 16px;display:flex;flex-wrap:wrap;gap:6px}.preview code{font-size:12px}.sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}progress{width:100%;max-width:160px}
.log{margin:0;padding:10px 16px 10px 36px;font:13px/1.5 ui-monospace,monospace;overflow-wrap:anywhere}
@media (max-width:700px){table.cards thead{display:none}table.cards,table.cards tbody,table.cards tr,table.cards td{display:block;width:auto}table.cards tr{border-bottom:1px solid var(--border,#e5e5e5);padding:8px 12px}table.cards td{display:flex;justify-content:space-between;gap:12px;padding:3px 0;border:0;text-align:right;white-space:normal;overflow-wrap:anywhere}table.cards td[data-label]::before{content:attr(data-label);font-weight:600;color:var(--muted,#666);text-align:left}table.cards td.actions{justify-content:flex-end;flex-wrap:wrap}}
.badge.warn{background:#fff4d6;color:#8a5a00}
.badge.big{font-size:13px;padding:3px 11px}
.s-waiting{background:var(--waiting-bg);color:var(--waiting)}
.s-active{background:var(--active-bg);color:var(--active)}
.s-active:before{content:"";width:6px;height:6px;border-radius:50%;background:currentColor;animation:pulse 1.4s ease-in-out infinite}
.s-delayed{background:var(--delayed-bg);color:var(--delayed)}
.s-completed{background:var(--completed-bg);color:var(--completed)}
.s-failed{background:var(--failed-bg);color:var(--failed)}
.s-cancelled{background:var(--cancelled-bg);color:var(--cancelled)}
.s-aborted{background:var(--aborted-bg);color:var(--aborted)}
.p-running{background:var(--completed-bg);color:var(--completed)}
.p-draining{background:var(--active-bg);color:var(--active)}
.p-aborting{background:var(--failed-bg);color:var(--failed)}
.p-stopped{background:var(--cancelled-bg);color:var(--cancelled)}
@keyframes pulse{50%{opacity:.35}}
@media (prefers-reduced-motion:reduce){.s-active:before{animation:none}}
.tabs{display:flex;gap:2px;padding:0 10px;border-bottom:1px solid var(--border);overflow-x:auto}
.tabs a{display:flex;align-items:center;gap:7px;padding:12px 12px 10px;color:var(--muted);font-weight:500;border-bottom:2px solid transparent;margin-bottom:-1px;white-space:nowrap}
.tabs a:hover{color:var(--text);text-decoration:none}
.tabs a.on{color:var(--text);border-bottom-color:var(--primary)}
.tabs .n{background:var(--code);color:var(--muted);border-radius:999px;padding:0 7px;font-size:11.5px;font-weight:600;font-variant-numeric:tabular-nums}
.tabs a.on .n{background:var(--waiting-bg);color:var(--primary)}
.btn{display:inline-flex;align-items:center;justify-content:center;gap:6px;height:32px;padding:0 13px;border-radius:7px;border:1px solid var(--border);background:var(--surface);color:var(--text);font:inherit;font-weight:550;cursor:pointer;white-space:nowrap}
.btn:hover{background:var(--row);text-decoration:none}
.btn:focus-visible,input:focus-visible,textarea:focus-visible{outline:2px solid var(--primary);outline-offset:1px}
.btn.primary{background:var(--primary);border-color:var(--primary);color:#fff}
.btn.primary:hover{background:var(--primary-h)}
.btn.danger{color:var(--danger);border-color:color-mix(in srgb,var(--danger) 40%,var(--border))}
.btn.danger:hover{background:var(--failed-bg)}
.btn.solid-danger{background:var(--danger);border-color:var(--danger);color:#fff}
.btn.solid-danger:hover{background:var(--danger-h)}
.btn.sm{height:26px;padding:0 9px;font-size:12.5px;border-radius:6px}
form.inline{display:inline;margin:0}
.actions-bar{display:flex;gap:8px;flex-wrap:wrap;align-items:center}
dl.props{display:grid;grid-template-columns:max-content 1fr;gap:9px 24px;margin:0}
dl.props dt{color:var(--muted)}
dl.props dd{margin:0;word-break:break-all}
pre.json{margin:0;padding:14px 16px;background:var(--code);border-radius:8px;overflow:auto;max-height:420px;white-space:pre-wrap;word-break:break-word}
pre.json.err{background:var(--failed-bg);color:var(--failed)}
.flash{padding:11px 16px;border-radius:8px;margin-bottom:18px;border:1px solid;font-weight:500}
.flash.ok{background:var(--completed-bg);color:var(--completed);border-color:color-mix(in srgb,var(--completed) 25%,transparent)}
.flash.error{background:var(--failed-bg);color:var(--failed);border-color:color-mix(in srgb,var(--failed) 25%,transparent)}
.empty{padding:42px 18px;text-align:center;color:var(--muted)}
.pager{display:flex;gap:8px;justify-content:flex-end;padding:12px 18px;border-top:1px solid var(--border)}
.events li{display:flex;gap:10px;align-items:center;padding:8px 18px;border-bottom:1px solid var(--border)}
.events{list-style:none;margin:0;padding:0}
.events li:last-child{border-bottom:0}
.events .t{margin-left:auto;color:var(--muted);font-size:12.5px;white-space:nowrap}
label{display:block;font-weight:550;margin:0 0 6px}
.field{margin-bottom:16px}
.field .hint{color:var(--muted);font-size:12.5px;margin-top:4px}
input[type=text],input[type=search],input[type=password],input[type=number],textarea{width:100%;padding:8px 11px;border:1px solid var(--border);border-radius:7px;background:var(--surface);color:var(--text);font:inherit}
textarea{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;min-height:140px;resize:vertical}
.row{display:grid;grid-template-columns:repeat(3,1fr);gap:14px}
@media (max-width:700px){.row{grid-template-columns:1fr}}
details.danger-zone summary{cursor:pointer;color:var(--muted);font-weight:500}
details.danger-zone[open] summary{margin-bottom:12px}
.login{max-width:380px;margin:80px auto}
.login .card .body{padding:26px}
.login h1{margin-bottom:6px}
.login p{color:var(--muted);margin:0 0 20px}
.or{display:flex;align-items:center;gap:10px;color:var(--faint);margin:18px 0;font-size:12px;text-transform:uppercase}
.or:before,.or:after{content:"";flex:1;height:1px;background:var(--border)}
.progress{height:6px;border-radius:3px;background:var(--code);overflow:hidden;width:120px;display:inline-block;vertical-align:middle}
.progress i{display:block;height:100%;background:var(--primary)}
`;

"""Pages for supervisors and coordinators: visit rates, overdue elders, visitors' workloads,
assignments and substitutes, surges."""

from django.urls import path

from tanfang.web.views.rates_page import rates, rates_missed
from tanfang.web.views.supervision import supervision
from tanfang.web.views.surges import surge_list, surge_new
from tanfang.web.views.teams import team_assign, team_balance, team_substitute, teams

urlpatterns = [
    path("rates/", rates, name="rates"),
    path("rates/missed/", rates_missed, name="rates-missed"),
    path("supervision/", supervision, name="supervision"),
    path("teams/", teams, name="teams"),
    path("teams/assign/", team_assign, name="team-assign"),
    path("teams/balance/", team_balance, name="team-balance"),
    path("teams/substitute/", team_substitute, name="team-substitute"),
    path("surges/", surge_list, name="surges"),
    path("surges/new/", surge_new, name="surge-new"),
]
